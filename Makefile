# rollci: `make demo` runs the whole pipeline on the embedded demo lab; `make test` runs
# every test. Both install what is missing first (haproxy via apt when root, ansible-core in
# .venv/).

VENV     := $(CURDIR)/.venv
JJB_VENV := $(CURDIR)/.venv-jjb
KEYSTONE_VENV := $(CURDIR)/.venv-keystone
MIMIC_VENV := $(CURDIR)/.venv-mimic
GROOVY_LINT := jenkins/test/node/node_modules/.bin/npm-groovy-lint
ROLLCI   := $(CURDIR)/target/debug/rollci
DEMO     := examples/demo/rollci.toml
export PATH := $(VENV)/bin:$(PATH)

.PHONY: demo test lint deps test-deps build clean-demo bench

demo: deps build
	$(ROLLCI) --config $(DEMO) run
	@echo "status: $(ROLLCI) --config $(DEMO) status"

test: test-deps
	rm -rf target/faults
	cargo test --locked --lib --bins --tests
	@cat target/faults/*.txt

# The fault matrix alone (tests/it/faults/): every provider, every step, failing actions,
# kill -9 and SIGTERM at exact moments, the remote side failing, the journal damaged; each
# provider's table is printed at the end (and by `make test`).
.PHONY: test-faults
test-faults: test-deps
	rm -rf target/faults
	cargo test --locked --test it faults::
	@cat target/faults/*.txt

# The architecture tests (no import cycle, no file too long) take a second: run them with
# the lints, so a commit that breaks the layering is caught before CI's hour.
lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo test --locked --test it architecture::

build:
	cargo build --locked

# Figures printed, never asserted: probe precision and capacity, subunit parsing against
# python-subunit, rollci's own overhead per step and across the demo pipeline (which
# needs what the demo needs), probe lateness on a loaded CPU, and real guests (libvirt: three
# booted at once vs one by one, their cleanup, the whole examples/vm run), and the real
# OpenStack lab (examples/openstack: cold and warm caches, rolling and all at once, by
# step). All of them use target/release/rollci, built first.
bench: deps
	cargo build --release --locked
	cargo bench --locked --bench probes
	$(VENV)/bin/python bench/subunit.py
	$(VENV)/bin/python bench/overhead.py
	$(VENV)/bin/python bench/lateness.py
	$(VENV)/bin/python bench/openstack.py
	@scripts/need-packages mariadbd:mariadb-server memcached
	$(VENV)/bin/python bench/openstack_lab.py
	@scripts/install-libvirt
	$(VENV)/bin/python bench/vm.py --vm-lab

# What the demo needs: haproxy and ansible-core.
deps: $(VENV)/bin/ansible-playbook
	@scripts/need-packages haproxy

# What the tests need besides: groovy (the Jenkins harness), chromium (the HTML report),
# Jenkins Job Builder (the config.xml reference), npm-groovy-lint (vars/ and Jenkinsfiles),
# Keystone (OpenStack token probes), mimic (Rackspace's OpenStack API emulator: Keystone
# v2.0 and Nova, for the OpenStack tests), sshd (the static provider against a real ssh
# server), libvirt + QEMU and the guest image (the libvirt provider; the image is cached by
# content under /var/cache/rollci/guest, ~6 minutes to build once).
test-deps: deps $(JJB_VENV)/bin/jenkins-jobs $(GROOVY_LINT) $(KEYSTONE_VENV)/bin/gunicorn \
           $(MIMIC_VENV)/bin/twistd
	@scripts/need-packages groovy chromium /usr/sbin/sshd:openssh-server
	@scripts/install-libvirt
	@scripts/guest-image >/dev/null

# A real Keystone for the token-renewal tests of `auth = "openstack"` probes.
$(KEYSTONE_VENV)/bin/gunicorn:
	python3 -m venv $(KEYSTONE_VENV)
	$(KEYSTONE_VENV)/bin/pip install --quiet 'keystone>=30,<31' 'gunicorn>=27,<28'

# mimic for tests/mimic/start. attrs is pinned: a recent attrs (26.1 tried) has no
# attr.validators.provides, and mimic then silently drops the plugins that use it (load
# balancers, monitoring, queues) from its catalog.
$(MIMIC_VENV)/bin/twistd:
	python3 -m venv $(MIMIC_VENV)
	$(MIMIC_VENV)/bin/pip install --quiet mimic==2.2.0 attrs==23.2.0

$(GROOVY_LINT):
	@scripts/need-packages npm
	npm install --prefix jenkins/test/node --no-audit --no-fund --silent npm-groovy-lint@15

$(JJB_VENV)/bin/jenkins-jobs:
	python3 -m venv $(JJB_VENV)
	$(JJB_VENV)/bin/pip install --quiet 'jenkins-job-builder>=6,<7'

$(VENV)/bin/ansible-playbook:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet 'ansible-core>=2.16,<2.21' python-subunit stestr junitxml

# The VM lab (examples/vm/): the demo's API in three libvirt guests (QEMU, TCG here), deployed
# over ssh by Ansible, behind haproxy on this machine. scripts/demo-vm starts libvirtd when
# none answers and stops it again afterwards, whatever the run's outcome.
# The real OpenStack lab (examples/openstack/): Keystone, Placement and Glance from PyPI,
# three API nodes each behind haproxy, MariaDB and memcached, upgraded rolling (0 ms at the
# VIP) and then all at once (the outage), each run checked for leaks by
# scripts/demo-openstack. The services' venvs are cached by content under
# /var/cache/rollci/openstack (a warm run installs nothing).
.PHONY: demo-openstack
demo-openstack: deps build
	@scripts/need-packages mariadbd:mariadb-server memcached
	$(VENV)/bin/python scripts/demo-openstack $(ROLLCI)

.PHONY: demo-vm
demo-vm: deps build
	@scripts/install-libvirt
	scripts/demo-vm $(ROLLCI)

clean-demo:
	-$(ROLLCI) --config $(DEMO) cleanup
	rm -rf examples/demo/.rollci

# The generated Jenkinsfile and job config.xml of every shipped lab, and of the periodic
# strays job, checked in under jenkins/ (a test fails when they are stale). JENKINS_SCM_URL is the repository the jobs
# check out; tests/it/jenkins.rs and jenkins/jjb/demo.yaml name the same default.
JENKINS_SCM_URL ?= https://git.example.com/rollci/rollci.git
JENKINS_LABS    := demo:examples/demo/rollci.toml demo-all-at-once:examples/demo/all-at-once.toml aio:examples/aio/rollci.toml vm:examples/vm/rollci.toml osa-onmetal:examples/osa-onmetal/rollci.toml openstack:examples/openstack/rollci.toml openstack-all-at-once:examples/openstack/all-at-once.toml
# The periodic strays job's flags (the reference pipeline's cloud); tests/it/jenkins.rs names the same.
JENKINS_STRAYS  := --cloud rackspace --region IAD

# vars/*.txt, the steps' help pages, from jenkins/help/ (a test fails when they are stale).
.PHONY: vars-help
vars-help:
	scripts/vars-help

.PHONY: jenkins
jenkins: build vars-help
	@set -e; for pair in $(JENKINS_LABS); do \
	  dir=jenkins/$${pair%%:*}; lab=$${pair#*:}; \
	  $(ROLLCI) --config $$lab jenkins jenkinsfile --out $$dir/Jenkinsfile; \
	  $(ROLLCI) --config $$lab jenkins job-config --out $$dir/config.xml \
	    --scm-url $(JENKINS_SCM_URL) --script-path $$dir/Jenkinsfile --branch main; \
	  echo "--- $$dir: Jenkinsfile, config.xml"; \
	done
	$(ROLLCI) jenkins strays-jenkinsfile $(JENKINS_STRAYS) --out jenkins/strays/Jenkinsfile
	$(ROLLCI) jenkins strays-job-config $(JENKINS_STRAYS) --out jenkins/strays/config.xml \
	  --scm-url $(JENKINS_SCM_URL) --script-path jenkins/strays/Jenkinsfile --branch main
	@echo "--- jenkins/strays: Jenkinsfile, config.xml"
