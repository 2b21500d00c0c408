# The two commands of the README:
#   make setup site    set up the controller, then run playbooks/site.yml on inventories/local
#   make test          every gate and test; the cluster tests and the cluster's molecule
#                      scenarios on KUBECONFIG's cluster or this machine's rig (tests/rig/up),
#                      skipped with the reason in the last line without either
VENV      ?= $(CURDIR)/.venv
BIN       := $(VENV)/bin
PYTEST    := $(BIN)/python -m pytest
INVENTORY ?= inventories/local
# The services and cluster suites mostly wait (server start-up, rollouts): two pytest workers
# roughly halve them on 2 cores. PYTEST_WORKERS=0 runs them in one process.
PYTEST_WORKERS ?= 2
XDIST     := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup site run-project teardown test test-gates test-start lint sanity unit services manifests cluster cluster-disruptive molecule bench build docs

setup:
	VENV=$(VENV) scripts/setup-controller

site:
	$(BIN)/ansible-playbook playbooks/site.yml -i $(INVENTORY)

run-project:
	$(BIN)/ansible-playbook playbooks/run_project.yml -i $(INVENTORY)

teardown:
	$(BIN)/ansible-playbook playbooks/teardown.yml -i $(INVENTORY)

# Each runner appends what it skipped (a missing tool, a scenario's prerequisites, pytest
# skips) to MLFLOW_K8S_SKIPS; the last line lists them, so "passed" never hides a skip.
SKIPS := $(CURDIR)/tests/output/make-test-skips.txt
# The gates run TEST_JOBS at a time (default 2; 1 runs them one after another): the cluster
# suite, the longest, beside the others in turn, so the cores its rollouts leave idle serve
# them. Each gate's output is printed whole when it ends (--output-sync); the first failure
# stops the run once the gates already running have ended.
TEST_JOBS ?= 2
test: export MLFLOW_K8S_SKIPS := $(SKIPS)
test: test-start
	@echo "make test: $(TEST_JOBS) gates at a time (TEST_JOBS), the cluster suite first; each gate's output appears when it ends"
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target $(addprefix -f ,$(MAKEFILE_LIST)) test-gates
	@$(MAKE) --no-print-directory $(addprefix -f ,$(MAKEFILE_LIST)) cluster-disruptive
	@if [ -s "$(SKIPS)" ]; then \
	  echo "make test: all gates passed; skipped: $$(paste -sd '|' "$(SKIPS)" | sed 's/|/; /g')"; \
	else echo "make test: all gates passed, nothing skipped"; fi

test-gates: cluster lint sanity unit services manifests molecule

test-start:
	@mkdir -p "$(dir $(SKIPS))" && rm -f "$(SKIPS)"

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint

sanity:
	tests/sanity/run

unit:
	$(PYTEST) tests/unit

# SERVICES_MARKERS narrows it (.ci/run's Python 3.11 line: "services and controller").
SERVICES_MARKERS ?= services
services:
	$(PYTEST) $(XDIST) -m "$(SERVICES_MARKERS)" tests/services

manifests:
	$(PYTEST) tests/manifests

# On real pods: the cluster KUBECONFIG names, or this machine's rig (tests/rig/up); skipped,
# with the reason in the last line, without either. loadfile: a file's tests run in their order
# on one worker (test_day_two.py's share one platform and build on each other); the files go out
# longest first (tests/cluster/conftest.py's LONGEST_FIRST; --no-loadscope-reorder keeps that
# order instead of xdist's by number of tests). The slowest tests' times end the output: what to
# look at when the suite grows.
cluster:
	tests/cluster/run $(XDIST) $(if $(XDIST),--dist loadfile --no-loadscope-reorder) --durations=30

# The cluster tests that restart the rig's control plane: alone, when no other gate uses the cluster.
cluster-disruptive:
	tests/cluster/run --disruptive

molecule:
	tests/molecule/run

# The tarball, and the command that installs it. Not into this checkout's .collections
# (the first collections_path of ansible.cfg): mlops/mlflow_k8s there is the link to this
# checkout, which ansible-galaxy's --force cannot replace.
BUILD ?= build
TARBALL = $(BUILD)/$(shell $(BIN)/python -c 'import yaml; g = yaml.safe_load(open("galaxy.yml")); print("%s-%s-%s.tar.gz" % (g["namespace"], g["name"], g["version"]))')
build:
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD) .
	@echo "make build: install it with"
	@echo "  $(patsubst $(CURDIR)/%,%,$(BIN))/ansible-galaxy collection install --force -p ~/.ansible/collections $(patsubst $(CURDIR)/%,%,$(TARBALL))"

bench:
	$(BIN)/python -m benchmarks
