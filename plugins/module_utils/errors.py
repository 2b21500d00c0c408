# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain exceptions of mlflow_project_job: each names the option a user has to change."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ProjectJobError(Exception):
    """An error a person can act on. ``option`` names the module option at fault."""

    def __init__(self, option, message, **details):
        self.option = option
        self.message = message
        self.details = details
        super(ProjectJobError, self).__init__(self.text())

    def text(self):
        if self.option:
            return "{0}: {1}".format(self.option, self.message)
        return self.message


class ProjectError(ProjectJobError):
    """The MLproject, the entry point or a parameter is wrong."""


class TemplateError(ProjectJobError):
    """The Job template or the backend config is wrong."""


class ImageError(ProjectJobError):
    """The image cannot be built, pushed or resolved."""


class ClusterError(ProjectJobError):
    """The Kubernetes API is unreachable, refuses us, or a namespace is missing."""


class TrackingError(ProjectJobError):
    """The MLflow tracking server is unreachable or refuses a request."""
