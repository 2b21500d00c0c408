# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the parsers of plugin_utils share: the error they raise and the reading of JSON
that a tool may precede with warnings.

Everything in plugin_utils is pure (text or dicts in, dicts or lists out) and runs on the
controller only, under the filters of plugins/filter/cluster.py; the unit tests run it on
outputs recorded in the tools' documented formats (tests/unit/fixtures/cluster/).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re


class ParseError(ValueError):
    """The text is not in the format the parser expects."""


def scalar(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    lowered = value.lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    return value


def load_json(text, what):
    if isinstance(text, (dict, list)):
        return text
    stripped = (text or "").strip()
    # minikube prints warnings (e.g. a newer release is available) before the JSON on
    # some versions: read from the first bracket.
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if not starts:
        raise ParseError("%s: no JSON in output" % what)
    try:
        return json.loads(stripped[min(starts) :])
    except ValueError as exc:
        raise ParseError("%s: JSON does not parse: %s" % (what, exc)) from exc


def parse_sha256_file(text, filename=None):
    """Read a checksum from a ``.sha256`` file: a bare hex digest (minikube, kubectl
    releases) or ``<digest>  <filename>`` lines (sha256sum format)."""
    digests = []
    for line in (text or "").splitlines():
        cells = line.split()
        if not cells:
            continue
        digest = cells[0].lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            continue
        name = cells[1].lstrip("*") if len(cells) > 1 else None
        if filename is None or name is None or name.rsplit("/", 1)[-1] == filename:
            digests.append(digest)
    if not digests:
        raise ParseError("no sha256 digest%s in checksum file" % (" for " + filename if filename else ""))
    return digests[0]
