#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# ruff: noqa: E402 (Ansible modules keep DOCUMENTATION before the imports)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mlflow_project_job
short_description: Run an MLflow Project as a Kubernetes Job, tracked as an MLflow run
version_added: "0.1.0"
description:
  - Submits an MLflow Project to Kubernetes as a Job, as C(mlflow run --backend kubernetes) does, with
    the same C(kubernetes_config.json) and Job template, and optionally waits for it.
  - The MLflow run is created through the tracking server before the Job, with the tags MLflow's
    Kubernetes backend sets and the parameters logged; its status follows the Job's conditions
    (C(Complete) gives FINISHED, C(Failed) gives FAILED), seen through a watch.
  - "Three ways the code reaches the pod: a prebuilt O(image) that holds it; O(build=true); or, the default when
    neither is given, no image of its own: the pod runs C(docker_env.image) (or O(base_image)), the module logs a
    deterministic archive of the project as the run's artifact C(mlflow-project/code.tar.gz) (its sha256 as the
    tag C(mlops.mlflow_k8s.code_sha256)), and an init container on that image fetches it through the tracking
    server's proxied artifact API into an C(emptyDir) at C(/mlflow/projects/code), the entry point's working
    directory. The image needs Python 3.6 or later (standard library only: no mlflow CLI, no curl, no shell)."
  - C(docker_env.environment) and C(docker_env.volumes) of the MLproject are honoured as C(mlflow run) honours them
    for Docker, within what the operator allows; a bare name copied from the controller only when listed in
    O(environment_allow), host paths only below O(host_path_allow) with O(pod_security=privileged).
  - "Who is trusted (issue #27): whoever writes the task's options is; the project's code, its MLproject, the
    values of O(project_uri), O(version) and O(parameters) (often passed on from whoever asked for the run), and
    whatever can be written to MLflow or to Jobs in the namespace are not. So O(project_uri) and O(version) never
    become options of git (a leading C(-) is refused) and are not expanded (no C($VARIABLES)); an MLproject cannot
    copy controller variables, mount host paths or weaken the pod's security beyond these options; errors quote
    no file the options named; and the controller's MLflow credentials go to O(tracking_uri) only."
  - Beyond MLflow, a prebuilt O(image) needs no Docker engine; O(build=true) tags the image with a hash of
    the project content, so an unchanged project is never rebuilt or re-pushed; Job names are always valid
    DNS-1123 labels; the command is an argument list; labels carry the run id and project.
  - "Idempotent: while a Job of the same identity exists, the module returns it with C(changed=false) and
    brings its run up to date (status and end time from the Job), unless O(force=true). The identity is
    the project content, entry point, parameters, run name, experiment, and everything else that shapes
    the Job: the image, the Job template and every option merged into it. A fixed template or another
    image is a new submission, even while the old Job (a failed one, say) is still there."
  - Anything that fails after the run was created but before its Job exists marks the run FAILED. Once the Job
    exists only O(on_timeout=delete) at O(wait_timeout), a pod that can never run, and O(state=absent) delete it;
    any other failure (the API server or the tracking server away) leaves the Job and the run for the next call,
    which settles the run. A run whose Job is gone ends FAILED at the next call (RV(orphaned_runs)).
author:
  - MLOps platform team (@mlops-platform)
extends_documentation_fragment:
  - mlops.mlflow_k8s.k8s_auth
attributes:
  check_mode:
    support: full
    description: Renders the Job and the planned run and returns them; creates and builds nothing.
  diff_mode:
    support: full
    description: Shows the Job manifest that is (or would be) created, or the Jobs that are deleted.
requirements:
  - mlflow >= 3.17
  - PyYAML
  - docker >= 7.1 (only with O(build=true))
options:
  state:
    description:
      - V(present) submits the project (or returns the Job of the same identity).
      - V(absent) deletes the Job found by O(job_name), O(run_id) or the identity of O(project_uri) and its
        parameters, with its pods, and marks a run that is still running KILLED.
    type: str
    choices: [present, absent]
    default: present
  project_uri:
    description:
      - Local directory of the MLflow project, with an C(MLproject) file (any case, as MLflow finds it).
        A leading C(~) is expanded, environment variables are not (C($HOME) stays as it is).
      - Or a git URL (C(https://), C(ssh://), C(git://), C(file://), C(user@host:path)), with C(#subdir) for a
        project below the repository's root, as MLflow takes it. It is cloned into a temporary directory on
        the controller for the call, as one argument after C(--) (never an option of git); a URI, user or host
        starting with C(-) is refused, as is a repository with a symbolic link pointing outside it.
      - A relative directory is resolved against O(base_dir), else against the module's working directory;
        for a task of a playbook on the local connection (C(delegate_to=localhost) or a localhost play) that is
        the playbook's directory, for an ad-hoc C(ansible -m) call the current directory. The error names
        the absolute path it tried.
      - Required with O(state=present), unless O(from_run_id) is given.
      - Files listed in the project's C(.mlflowignore) are left out of the snapshot and of a built image, as are
        C(.git), C(__pycache__), C(mlruns), C(.venv) and C(*.pyc) (syntax in docs/mlflow_project_job.md).
    type: str
  base_dir:
    description:
      - Directory that relative paths in O(project_uri), O(backend_config) and O(job_template) (and
        C(kube-job-template-path) inside the backend config) are resolved against.
      - Defaults to the module's working directory (see O(project_uri)). C(playbooks/run_project.yml) sets
        it to the directory C(ansible-playbook) was started in, so C(-e project_uri=...) is relative to it.
    type: path
  from_run_id:
    description:
      - Run again exactly the code of this earlier run, from its C(mlflow-project/code.tar.gz) artifact (checked
        against its C(mlops.mlflow_k8s.code_sha256) tag), with no checkout. The new run gets the same archive and
        the tag C(mlops.mlflow_k8s.code_from_run).
      - Mutually exclusive with O(project_uri), O(image) and O(build=true).
    type: str
  base_image:
    description:
      - The image the project runs on instead of C(docker_env.image) (with the snapshot, and the base of
        O(build=true)), for example a mirror on an air-gapped site. It needs Python for the snapshot's init
        container.
    type: str
  snapshot_max_mb:
    description:
      - Largest total size, in MB, of the project files that go into the snapshot; past it the call fails before
        anything is created, naming the largest files. V(0) lifts the limit.
    type: int
    default: 200
  tracking_auth_secret:
    description:
      - A Secret in the Job's namespace with the tracking server's basic-auth credentials, given to the init
        container and the project container as E(MLFLOW_TRACKING_USERNAME)/E(MLFLOW_TRACKING_PASSWORD) by
        C(secretKeyRef), never as values.
      - Its name, or a mapping with C(name), C(username_key) (default C(username)) and C(password_key) (default
        C(password)).
    type: raw
  tracking_grant_user:
    description:
      - With basic auth, the MLflow user the pods log as (the one in O(tracking_auth_secret)). Before the run is
        created it gets C(EDIT) on the run's experiment, granted with this module's own credentials (an admin's,
        or C(MANAGE) on the experiment). The pods then need no admin password and can write to no other
        experiment (playbooks/run_project.yml passes the project runner's user).
      - Not granted in check mode; an existing grant is left as it is.
    type: str
  allow_host_volumes:
    description:
      - Deprecated, kept so that playbooks passing it still run; it admits no host path by itself (V(true) only
        gives a warning). Use O(host_path_allow).
      - It used to admit every C(docker_env.volumes) entry, C(/:/host) read-write included.
    type: bool
    default: false
  host_path_allow:
    description:
      - Host directories an MLproject may mount through C(docker_env.volumes) (C(host:container[:ro|rw])), as
        C(hostPath) volumes of the node that runs the pod. Each entry is an absolute directory, read-only, or
        with C(:rw) read-write (C(/srv/datasets), C(/scratch/mlflow:rw)).
      - A volume is mounted when its host path (absolute, without C(..), normalised) is an entry, or lies below a
        read-only entry; it is mounted read-only unless its entry says C(:rw) (then its own mode decides; C(:rw)
        on a read-only entry is refused). Below a read-write entry nothing else is admitted, since a pod that can
        write there can leave a symbolic link that the node would follow for the next pod.
      - hostPath volumes break Pod Security baseline and restricted, so this needs O(pod_security=privileged)
        too (and a namespace that admits such pods).
      - Empty (the default), an MLproject with volumes is refused before anything is created, naming this option.
    type: list
    elements: str
    default: []
  environment_allow:
    description:
      - Names of controller environment variables an MLproject may copy into the Job with a bare C(NAME) in
        C(docker_env.environment) (C(mlflow run) copies the submitter's value so). A bare name not listed here
        is refused before anything is created, naming the variable and this option. C([NAME, value]) entries
        carry their value in the MLproject and are always allowed.
      - Names that look like secrets (C(*PASSWORD*), C(*TOKEN*), C(*_KEY), ...) are refused even when listed;
        give those with O(env_from_secrets) or O(env) with C(valueFrom).
    type: list
    elements: str
    default: []
  pod_security:
    description:
      - The L(Pod Security Standard,https://kubernetes.io/docs/concepts/security/pod-security-standards/) the
        Job's pod must meet. With V(restricted) or V(baseline), a Job template that breaks it is refused before
        anything is created, the error naming every offending field
        (C(spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation must be false)); the Job as
        rendered (the snapshot's init container, docker_env's volumes and environment) is checked too, so nothing
        the MLproject controls can weaken it.
      - V(restricted) needs, for every container, C(runAsNonRoot=true), C(allowPrivilegeEscalation=false),
        C(capabilities.drop=[ALL]) (adding only C(NET_BIND_SERVICE)), C(seccompProfile) C(RuntimeDefault) or
        C(Localhost) (on the container or the pod), no C(runAsUser=0), and no host namespaces, privileged
        containers, host ports or volumes other than configMap, csi, downwardAPI, emptyDir, ephemeral, image,
        persistentVolumeClaim, projected and secret. The built-in template meets it (it runs as uid and gid
        1000, so an image made to run as root runs as 1000 and must not need to write outside C(/tmp), the
        snapshot's working directory or its volumes).
      - V(privileged) checks nothing; it is what O(host_path_allow) needs.
    type: str
    choices: [restricted, baseline, privileged]
    default: restricted
  version:
    description:
      - Branch, tag or commit to check out of a git O(project_uri), as C(mlflow run --version).
      - It reaches C(git checkout) before C(--), so it can only be a revision; a value starting with C(-) is
        refused. A version that does not exist is reported without git's own output.
    type: str
  entry_point:
    description:
      - Entry point of the MLproject, or a C(.py)/C(.sh)/C(.R) file of the project, as C(mlflow run -e).
    type: str
    default: main
  parameters:
    description:
      - Parameters of the entry point, as C(mlflow run -P key=value).
      - Types C(float), C(int), C(string), C(path) and C(uri) are checked before anything is created;
        parameters the entry point does not declare are appended as C(--key value), as MLflow does.
      - C(path) values are passed as given; they are resolved inside the container, whose working directory
        is the project.
    type: dict
    default: {}
  experiment_name:
    description:
      - Experiment of the run; created when missing, as C(mlflow run --experiment-name) does.
    type: str
  experiment_id:
    description:
      - Id of an existing experiment. Without this and O(experiment_name), the default experiment C(0).
    type: str
  run_name:
    description:
      - Name of the MLflow run. Part of the identity that makes resubmission idempotent.
    type: str
  tracking_uri:
    description:
      - Tracking server the module creates and updates the run on. Defaults to E(MLFLOW_TRACKING_URI).
      - Credentials are read by MLflow from E(MLFLOW_TRACKING_USERNAME), E(MLFLOW_TRACKING_PASSWORD) or
        E(MLFLOW_TRACKING_TOKEN), never from options; they go to this server only. With O(state=absent), the
        tracking URI a Job records (its annotation, which anyone who can edit Jobs can change) is never
        contacted; a Job naming another server is reported in a warning and its run is left alone.
    type: str
  job_tracking_uri:
    description:
      - Tracking URI the pod uses (E(MLFLOW_TRACKING_URI) in the Job), for example the in-cluster Service URL.
      - Defaults to E(KUBE_MLFLOW_TRACKING_URI), as MLflow, then to O(tracking_uri).
    type: str
  backend_config:
    description:
      - Path of MLflow's C(kubernetes_config.json) (C(kube-context), C(repository-uri),
        C(kube-job-template-path)). Options given explicitly win over its keys.
      - It must be plain JSON; MLflow's documentation shows it with C(#) comments, which JSON does not
        allow; the error names the file, the line and column, and says when a comment is there. Errors never
        quote the file's content (nor the names of unknown keys, unless one is a typo of a known key).
    type: path
  job_template:
    description:
      - The Job template, a path of a YAML file or an inline mapping, as MLflow's C(kube-job-template-path).
      - MLflow's replacements apply (C(metadata.name), the first container's C(name), C(image), C(command));
        C(env) is appended to. Without a template, a built-in one is used (no API token mounted, restart policy
        C(Never), C(backoffLimit) 0, a day of C(ttlSecondsAfterFinished)).
      - C(resources) belongs to the container (C(spec.template.spec.containers[0].resources)); a template that
        puts it at pod level (C(spec.template.spec.resources), as MLflow's example of the seed does) gets a
        warning naming the field, since its limits are lost where pod-level resources are not enabled.
      - It must meet O(pod_security) (by default C(restricted)).
    type: raw
  image:
    description:
      - A prebuilt image holding the project (its working directory the project). No Docker engine needed.
      - Without O(image) and O(build), the code travels as an artifact of the run (see the description).
      - Mutually exclusive with O(build=true).
    type: str
  build:
    description:
      - Build C(FROM docker_env.image) with the project copied to C(/mlflow/projects/code/) and push it to
        O(repository_uri), as MLflow does, tagged C(mlflow-<hash of the content>). An image already in the
        registry under that tag is used as it is. The Job uses the pushed digest.
    type: bool
    default: false
  repository_uri:
    description:
      - Repository to push built images to, without tag (C(registry:5000/team/project)). Overrides
        C(repository-uri) of O(backend_config).
    type: str
  registry_url:
    description:
      - Registry to log in to with O(registry_username) (defaults to the repository's registry).
    type: str
  registry_username:
    description:
      - User for the registry login before pushing.
    type: str
  registry_password:
    description:
      - Password or token for O(registry_username).
    type: str
  docker_host:
    description:
      - Docker engine to build with (C(unix:///var/run/docker.sock), C(tcp://host:2376)). Defaults to E(DOCKER_HOST).
    type: str
  namespace:
    description:
      - Namespace of the Job. Defaults to the template's C(metadata.namespace), then C(default). It must exist.
    type: str
  service_account:
    description:
      - ServiceAccount the pod runs as.
    type: str
  image_pull_secrets:
    description:
      - Names of Secrets to pull the image with, added to the template's.
    type: list
    elements: str
  resources:
    description:
      - Resources of the project container, merged into the template's, for example
        C(limits.nvidia.com/gpu=1) beside C(requests.cpu=2) (see EXAMPLES).
    type: dict
  node_selector:
    description:
      - Node labels the pod must run on, merged into the template's.
    type: dict
  tolerations:
    description:
      - Tolerations added to the template's.
    type: list
    elements: dict
  env:
    description:
      - Environment of the project container, a mapping of names to values or a list of EnvVar mappings
        (with C(valueFrom) for Secrets). Replaces template entries of the same name.
      - E(MLFLOW_RUN_ID), E(MLFLOW_TRACKING_URI) and E(MLFLOW_EXPERIMENT_ID) are set by the module.
    type: raw
  env_from_secrets:
    description:
      - Secrets whose keys all become environment variables of the container (C(envFrom)).
    type: list
    elements: str
  labels:
    description:
      - Labels added to the Job and its pods, over the template's. Neither replaces the other's
        C(app.kubernetes.io/*) labels; the module adds the standard ones only where they are missing.
      - The module's own labels are under C(mlops.mlflow-k8s/) (C(run-id), C(project), C(identity)), a
        prefix these labels cannot use.
    type: dict
  backoff_limit:
    description:
      - C(spec.backoffLimit) of the Job (retries before C(Failed)).
    type: int
  active_deadline_seconds:
    description:
      - C(spec.activeDeadlineSeconds), after which Kubernetes fails the Job.
    type: int
  ttl_seconds_after_finished:
    description:
      - C(spec.ttlSecondsAfterFinished), after which Kubernetes deletes the finished Job.
    type: int
  wait:
    description:
      - Wait for the Job to end, then set the run's status from its conditions.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait=true).
    type: int
    default: 3600
  on_timeout:
    description:
      - What to do when O(wait_timeout) passes, V(delete) the Job (with its pods) and mark the run KILLED,
        or V(keep) it running (a later call or M(mlops.mlflow_k8s.mlflow_project_job_info) catches up).
      - The same applies when a pod of the Job is stuck (see RV(stuck)); the run is then marked FAILED.
    type: str
    choices: [delete, keep]
    default: delete
  logs:
    description:
      - When the Job ended (or timed out), return the tail of the pod's log and store the whole log as the
        run's artifact C(kubernetes/job.log).
    type: bool
    default: true
  log_tail_lines:
    description:
      - Lines of log returned with O(logs=true).
    type: int
    default: 100
  force:
    description:
      - Start another Job even when one of the same identity exists.
    type: bool
    default: false
  propagation_policy:
    description:
      - How dependent pods are deleted with the Job.
    type: str
    choices: [Foreground, Background]
    default: Foreground
  job_name:
    description:
      - With O(state=absent), the name of the Job to delete.
    type: str
  run_id:
    description:
      - With O(state=absent), delete the Job of this MLflow run.
    type: str
notes:
  - The module runs where the kubernetes and mlflow libraries are, usually the controller
    (C(delegate_to=localhost) or a localhost play).
seealso:
  - module: mlops.mlflow_k8s.mlflow_project_job_info
  - name: MLflow Projects on Kubernetes
    description: What C(mlflow run --backend kubernetes) does.
    link: https://mlflow.org/docs/latest/ml/projects/#kubernetes-execution
"""

EXAMPLES = r"""
- name: Run the wine project on its docker_env image, its code as an artifact of the run
  mlops.mlflow_k8s.mlflow_project_job:
    project_uri: examples/wine-quality
    parameters:
      alpha: 0.5
    tracking_uri: http://mlflow.example.com:30500
    job_tracking_uri: http://mlflow-server.mlflow.svc:5000
    namespace: mlflow-projects
    wait: true
  register: wine_snapshot

- name: Run exactly the same code again, from the earlier run, with another alpha
  mlops.mlflow_k8s.mlflow_project_job:
    from_run_id: "{{ wine_snapshot.run.run_id }}"
    parameters:
      alpha: 0.7
    tracking_uri: http://mlflow.example.com:30500
    job_tracking_uri: http://mlflow-server.mlflow.svc:5000
    # The pods' own MLflow user (project_runner's Secret in the project namespace), granted EDIT on the
    # experiment with this task's credentials: never the platform's admin Secret.
    tracking_auth_secret: mlflow-project-tracking
    tracking_grant_user: runner-mlflow-projects
    namespace: mlflow-projects

- name: Run the wine project with a prebuilt image and wait for it
  mlops.mlflow_k8s.mlflow_project_job:
    project_uri: examples/wine-quality
    image: registry.example.com/ml/wine-quality:1.0
    parameters:
      alpha: 0.5
      l1_ratio: 0.2
    experiment_name: wine
    run_name: alpha-0.5
    tracking_uri: http://mlflow.example.com:30500
    job_tracking_uri: http://mlflow-server.mlflow.svc:5000
    namespace: mlflow-projects
    service_account: mlflow-project
    wait: true
    wait_timeout: 1800
  register: wine

- name: Switch from mlflow run --backend kubernetes, keeping its config and template
  mlops.mlflow_k8s.mlflow_project_job:
    project_uri: examples/wine-quality
    backend_config: examples/wine-quality/kubernetes_config.json
    build: true
    registry_username: ci
    registry_password: "{{ vault_registry_password }}"
    parameters:
      alpha: 0.5

- name: Ask for a GPU on a labelled node
  mlops.mlflow_k8s.mlflow_project_job:
    project_uri: projects/train
    image: registry.example.com/ml/train:2.3
    resources:
      limits:
        nvidia.com/gpu: 1
    node_selector:
      accelerator: nvidia
    tolerations:
      - key: nvidia.com/gpu
        operator: Exists
        effect: NoSchedule

- name: Let the MLproject copy the pip index from the controller and mount a dataset directory of the nodes
  mlops.mlflow_k8s.mlflow_project_job:
    project_uri: projects/train
    image: registry.example.com/ml/train:2.3
    environment_allow: [PIP_INDEX_URL]  # docker_env.environment may name it bare; nothing else is copied
    host_path_allow: [/srv/datasets]  # docker_env.volumes at or below it, mounted read-only
    pod_security: privileged  # hostPath volumes break baseline and restricted

- name: Cancel the Job of a run and mark the run KILLED
  mlops.mlflow_k8s.mlflow_project_job:
    state: absent
    namespace: mlflow-projects
    run_id: "{{ wine.run.run_id }}"
"""

RETURN = r"""
job:
  description: The Job manifest as created (or, in check mode, as it would be created), or the existing Job.
  returned: state=present
  type: dict
job_name:
  description:
    - Name of the Job, the project's name and the first 16 hex digits of the identity (one Job per identity; the
      API server refuses a second). With O(force) MLflow's timestamped form.
  returned: state=present
  type: str
  sample: wine-quality-3f2a9c0d1e4b5a69
orphaned_runs:
  description: Runs of this namespace whose Job is gone (submitter died, TTL, deleted), ended FAILED by this call.
  returned: state=present, when there were any
  type: list
  elements: str
superseded_runs:
  description: Runs of the same identity that lost the race for the Job's name, ended KILLED by this call.
  returned: state=present, when there were any
  type: list
  elements: str
namespace:
  description: Namespace of the Job.
  returned: always
  type: str
command:
  description: The container's command as an argument list.
  returned: state=present
  type: list
  elements: str
  sample: [python, train.py, --alpha, "0.5", --l1-ratio, "0.1"]
identity:
  description: >-
    Hash of project content, entry point, parameters, run name, experiment and the Job as rendered without
    the run's own values (image, template, merged options); also the Job's annotation.
  returned: state=present
  type: str
existing:
  description: True when a Job of the same identity existed and was returned instead of starting another.
  returned: when a Job of the same identity exists
  type: bool
run:
  description: The MLflow run (in check mode, the planned run).
  returned: state=present
  type: dict
  contains:
    run_id:
      description: Id of the run (null in check mode).
      type: str
    experiment_id:
      description: Id of the experiment (null in check mode when it would be created).
      type: str
    status:
      description: RUNNING, FINISHED, FAILED or KILLED; PLANNED in check mode.
      type: str
    run_name:
      description: Name of the run.
      type: str
    artifact_uri:
      description: Where the run's artifacts (including C(kubernetes/job.log)) are stored.
      type: str
    tags:
      description: Tags of the run, MLflow's backend tags among them.
      type: dict
    params:
      description: Logged parameters, as MLflow logs them.
      type: dict
state:
  description:
    - State of the Job when the module returned, C(Complete), C(Failed), C(Running), C(Pending) or C(Deleted).
    - C(Stuck) when the wait ended early because a pod of the Job will not start or keeps crashing (see RV(stuck)).
  returned: with wait=true, or when an existing Job is returned
  type: str
stuck:
  description:
    - The pod that ended the wait early (the module fails), unschedulable (a missing PVC, no fitting node),
      C(ErrImagePull)/C(ImagePullBackOff), C(CreateContainerConfigError) (a missing Secret or ConfigMap),
      a container that failed twice the same way (C(RepeatedFailure), restartPolicy OnFailure), C(CrashLoopBackOff)
      past 3 restarts. The run is marked FAILED with the tag
      C(mlops.mlflow-k8s/failure-reason) set to RV(stuck.reason); the Job is deleted or kept as O(on_timeout) says.
  returned: when a pod of the Job was stuck
  type: dict
  contains:
    pod:
      description: Pod name.
      type: str
    reason:
      description: C(Unschedulable), C(ErrImagePull), C(ImagePullBackOff), C(CreateContainerConfigError), ...
      type: str
    message:
      description: The scheduler's or kubelet's message.
      type: str
    container:
      description: The container concerned, if any.
      type: str
    events:
      description: The pod's last events, each its reason, a colon and its message, oldest first.
      type: list
      elements: str
    log:
      description: The container's last log lines.
      type: str
pending_reasons:
  description: What the Job's pods waited for while the module waited (distinct texts, oldest first).
  returned: when a pod of the Job was stuck
  type: list
  elements: str
timed_out:
  description: Whether wait_timeout passed before the Job ended.
  returned: with wait=true
  type: bool
job_deleted:
  description: Whether the Job was deleted after a timeout or a stuck pod (on_timeout=delete).
  returned: when the wait timed out or a pod was stuck, with on_timeout=delete
  type: bool
run_synced:
  description: Whether the module changed the run's status (and end time) to match the Job.
  returned: with wait=true, or when an existing Job is returned
  type: bool
logs:
  description: The last log_tail_lines lines of the pod's log.
  returned: with logs=true when the Job ended or timed out
  type: str
snapshot:
  description: The project's code as an artifact of the run (without O(image) and O(build)).
  returned: when the code travels as an artifact
  type: dict
  contains:
    artifact_path:
      description: Path of the archive among the run's artifacts.
      type: str
      sample: mlflow-project/code.tar.gz
    sha256:
      description: sha256 of the archive, also the run's tag C(mlops.mlflow_k8s.code_sha256).
      type: str
    size:
      description: Size of the archive in bytes.
      type: int
    unpacked_size:
      description: Total size of the files in bytes.
      type: int
    files:
      description: Number of files.
      type: int
    url:
      description: Where the init container fetches it (in check mode, with placeholders for the run).
      type: str
    uploaded:
      description: Whether this call uploaded it (false in check mode).
      type: bool
    base_image:
      description: The image the init container and the project run on.
      type: str
    from_run_id:
      description: The earlier run whose code this is, with O(from_run_id).
      type: str
image:
  description: The built image.
  returned: with build=true
  type: dict
  contains:
    tag:
      description: Tag from the content hash.
      type: str
    digest:
      description: Registry digest.
      type: str
    reference:
      description: tag@digest, what the Job runs.
      type: str
    built:
      description: Whether the image was built by this call.
      type: bool
    pushed:
      description: Whether the image was pushed by this call.
      type: bool
deleted:
  description: Names of the Jobs this call deleted (not a Job still terminating from an earlier deletion).
  returned: state=absent
  type: list
  elements: str
killed_runs:
  description: Run ids marked KILLED.
  returned: state=absent
  type: list
  elements: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import (
    auth_argument_spec,
    tracking_uri_spec,
)
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.entry import finish
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectJobError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.k8s_client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
)
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.tracking import HAS_MLFLOW, MLFLOW_IMPORT_ERROR


def argument_spec():
    spec = auth_argument_spec()
    spec.update(
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        project_uri={"type": "str"},  # not "path": no $VARIABLES expansion of an untrusted value
        base_dir={"type": "path"},
        from_run_id={"type": "str"},
        base_image={"type": "str"},
        snapshot_max_mb={"type": "int", "default": 200},
        tracking_auth_secret={"type": "raw", "no_log": False},
        tracking_grant_user={"type": "str"},
        allow_host_volumes={"type": "bool", "default": False},
        host_path_allow={"type": "list", "elements": "str", "default": []},
        environment_allow={"type": "list", "elements": "str", "default": []},
        pod_security={"type": "str", "choices": ["restricted", "baseline", "privileged"], "default": "restricted"},
        version={"type": "str"},
        entry_point={"type": "str", "default": "main"},
        parameters={"type": "dict", "default": {}},
        experiment_name={"type": "str"},
        experiment_id={"type": "str"},
        run_name={"type": "str"},
        tracking_uri=tracking_uri_spec(),
        job_tracking_uri={"type": "str"},
        backend_config={"type": "path"},
        job_template={"type": "raw"},
        image={"type": "str"},
        build={"type": "bool", "default": False},
        repository_uri={"type": "str"},
        registry_url={"type": "str"},
        registry_username={"type": "str"},
        registry_password={"type": "str", "no_log": True},
        docker_host={"type": "str"},
        namespace={"type": "str"},
        service_account={"type": "str"},
        image_pull_secrets={"type": "list", "elements": "str", "no_log": False},
        resources={"type": "dict"},
        node_selector={"type": "dict"},
        tolerations={"type": "list", "elements": "dict"},
        env={"type": "raw"},
        env_from_secrets={"type": "list", "elements": "str", "no_log": False},
        labels={"type": "dict"},
        backoff_limit={"type": "int"},
        active_deadline_seconds={"type": "int"},
        ttl_seconds_after_finished={"type": "int"},
        wait={"type": "bool", "default": False},
        wait_timeout={"type": "int", "default": 3600},
        on_timeout={"type": "str", "choices": ["delete", "keep"], "default": "delete"},
        logs={"type": "bool", "default": True},
        log_tail_lines={"type": "int", "default": 100},
        force={"type": "bool", "default": False},
        propagation_policy={"type": "str", "choices": ["Foreground", "Background"], "default": "Foreground"},
        job_name={"type": "str"},
        run_id={"type": "str"},
    )
    return spec


def check_options(params):
    """Checks the argument spec cannot express; returns (option, message) or None."""
    if params["build"] and params.get("image"):
        return "image", "image and build: true are mutually exclusive (a prebuilt image, or one built here)"
    if params.get("from_run_id"):
        for option in ("project_uri", "version", "image"):
            if params.get(option):
                return option, "from_run_id runs the code of an earlier run; {0} has no place beside it".format(option)
        if params["build"]:
            return "build", "from_run_id runs the code of an earlier run on its base image; build: true has no place"
    if params.get("tracking_auth_secret") is not None and not isinstance(params["tracking_auth_secret"], (str, dict)):
        return "tracking_auth_secret", "must be a Secret name or a mapping with name, username_key, password_key"
    for option in ("wait_timeout", "log_tail_lines", "backoff_limit", "active_deadline_seconds", "snapshot_max_mb"):
        value = params.get(option)
        if value is not None and value < 0:
            return option, "must not be negative, got {0}".format(value)
    if params.get("ttl_seconds_after_finished") is not None and params["ttl_seconds_after_finished"] < 0:
        return "ttl_seconds_after_finished", "must not be negative"
    if params.get("job_template") is not None and not isinstance(params["job_template"], (str, dict)):
        return "job_template", "must be a path or a mapping"
    return None


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[("experiment_name", "experiment_id"), ("job_name", "run_id")],
        required_if=[
            ("state", "present", ("project_uri", "from_run_id"), True),
            ("state", "absent", ("project_uri", "job_name", "run_id"), True),
        ],
    )

    def call():
        problem = check_options(module.params)
        if problem:
            raise ProjectJobError(*problem)

        from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.job import TrackingGuard
        from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.runner import Runner

        runner = Runner(module.params, check_mode=module.check_mode, warn=module.warn)
        guard = TrackingGuard(module.params.get("tracking_uri"))
        guard.install(runner)  # the controller's MLflow credentials go to tracking_uri only
        result = runner.present() if module.params["state"] == "present" else runner.absent()
        guard.report(result, module.warn)
        if not module._diff:
            result.pop("diff", None)
        return result  # with failed when a pod of the Job is stuck: the result says which and why

    finish(
        module,
        call,
        requires=[("kubernetes", HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR), ("mlflow", HAS_MLFLOW, MLFLOW_IMPORT_ERROR)],
    )


if __name__ == "__main__":
    main()
