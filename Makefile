# Everything runs inside .venv, installed at the exact versions of constraints.txt.
# torch==2.13.0 goes in first from PyTorch's CPU wheel index, so that sentence-transformers does
# not pull a multi-GB CUDA build from PyPI; where that index cannot be reached (a machine that
# sees only PyPI and a local wheelhouse) pip gives up on it within seconds and installs torch from
# what it can reach. macOS wheels on PyPI are CPU builds already.
PYTHON ?= python3
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUESTION ?= How many dimensions do all-MiniLM-L6-v2 embeddings have?

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet 'pip>=24,<27'
	$(BIN)/pip install --quiet --retries 0 --timeout 5 --extra-index-url $(TORCH_INDEX) -c constraints.txt torch==2.13.0 \
		|| $(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,test]'  # every extra but bench (llama.cpp, built from source)
	touch $(STAMP)

demo: install
	$(BIN)/rag ingest sample-docs
	$(BIN)/rag ask "$(QUESTION)"

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) indexes/default *.egg-info
