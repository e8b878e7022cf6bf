# Everything runs inside .venv. torch==2.13.0 (a CPU build) goes in first so that
# sentence-transformers does not pull a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUESTION ?= How many dimensions do all-MiniLM-L6-v2 embeddings have?

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/rag ingest docs
	$(BIN)/rag ask "$(QUESTION)"

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) indexes/default *.egg-info
