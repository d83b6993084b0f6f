# Two commands for a new user: `make run` and `make test`. Both set up .venv from requirements.txt first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Ray (requirements-cluster.txt) only for what needs it: the tests (CI runs the Ray cluster tests) and benchmarks;
# `make run` stays on the lean install.
CLUSTER_STAMP := $(VENV)/.installed-cluster

.PHONY: run test bench protections lint worker clean

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	@touch $(STAMP)

$(CLUSTER_STAMP): requirements-cluster.txt $(STAMP)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-cluster.txt
	@touch $(CLUSTER_STAMP)

run: $(STAMP)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(BIN)/streamlit run app.py --server.address 127.0.0.1

# pytest exits 5 when it collects nothing; make would turn that into a failure of its own.
test: $(CLUSTER_STAMP)
	$(BIN)/python -m pytest -q; status=$$?; if [ $$status -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$status

bench: $(CLUSTER_STAMP)
	$(BIN)/python -m benchmarks

protections: $(CLUSTER_STAMP)
	$(BIN)/python scripts/check_protections.py

lint: $(STAMP)
	$(BIN)/ruff check .

worker: $(STAMP)
	$(BIN)/python -m workbench worker

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
