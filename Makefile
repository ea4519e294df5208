# rollci: `make demo` runs the whole pipeline on the embedded demo lab; `make test` runs
# every test. Both install what is missing first (haproxy via apt when root, ansible-core in
# .venv/).

VENV     := $(CURDIR)/.venv
ROLLCI   := $(CURDIR)/target/debug/rollci
DEMO     := examples/demo/rollci.toml
export PATH := $(VENV)/bin:$(PATH)

.PHONY: demo test lint deps build clean-demo

demo: deps build
	$(ROLLCI) --config $(DEMO) run
	@echo "status: $(ROLLCI) --config $(DEMO) status"

test: deps
	cargo test --locked --all-targets

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

build:
	cargo build --locked

deps: $(VENV)/bin/ansible-playbook
	@scripts/need-haproxy

$(VENV)/bin/ansible-playbook:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet 'ansible-core>=2.16,<2.21' python-subunit stestr junitxml

clean-demo:
	-$(ROLLCI) --config $(DEMO) cleanup
	rm -rf examples/demo/.rollci
