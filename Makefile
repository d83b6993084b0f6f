# Two commands for a new user: `make run` and `make test`. Both set up .venv from requirements.txt first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench protections lint worker clean

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	@touch $(STAMP)

run: $(STAMP)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(BIN)/streamlit run app.py --server.address 127.0.0.1

# pytest exits 5 when it collects nothing; make would turn that into a failure of its own.
test: $(STAMP)
	$(BIN)/python -m pytest -q; status=$$?; if [ $$status -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$status

bench: $(STAMP)
	$(BIN)/python -m benchmarks

protections: $(STAMP)
	$(BIN)/python scripts/check_protections.py

lint: $(STAMP)
	$(BIN)/ruff check .

worker: $(STAMP)
	$(BIN)/python -m workbench worker

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
