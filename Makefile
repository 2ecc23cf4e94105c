# Two entry points: `make demo` (the main job) and `make test`.
# Both create .venv with tensorflow-cpu==2.15.1 and build deeprec on first use.
# The demo trains Wide & Deep on 3M generated Criteo-like rows (one pass),
# evaluates it against the hidden model's ceiling and exports a SavedModel, then
# serves it with deeprec-model-server and prints the answer to one gRPC request.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := $(shell find csrc deeprec serving -name '*.cc' -o -name '*.h' -o -name '*.proto') \
	setup.py pyproject.toml
# The serving processor's protobuf code must come from protoc 3.21.x, the
# protobuf of TensorFlow 2.15's headers: Debian 12's protobuf-compiler.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-cxx test-python clean

$(VENV)/.installed: $(SOURCES)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), \
		"deeprec needs Python 3.11 (tensorflow-cpu 2.15.1); set PYTHON=python3.11"'
	@protoc --version 2>/dev/null | grep -q '^libprotoc 3\.21\.' || { \
		echo "installing protoc 3.21 (protobuf-compiler) for the serving processor"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q protobuf-compiler; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q tensorflow-cpu==2.15.1 "numpy<2" "pyarrow>=14,<26" "pytest>=7" \
		setuptools wheel
	$(PY) -m pip install -q --no-build-isolation -e .
	# The model server's client/server protos; --no-deps because the package
	# depends on `tensorflow`, which would replace tensorflow-cpu.
	$(PY) -m pip install -q --no-deps tensorflow-serving-api==2.15.1
	touch $@

DEMO_DIR ?= result/demo
DEMO_FLAGS ?= --train_rows 3000000 --test_rows 100000

demo: $(VENV)/.installed
	$(PY) modelzoo/wdl/train.py --data_location data/criteo --output_dir $(DEMO_DIR) $(DEMO_FLAGS)
	$(PY) tools/serve_demo.py --model_base_path $(DEMO_DIR)/saved_model --data_location data/criteo

test: test-cxx test-python

test-cxx:
	bash csrc/embedding/tests/run_sanitized.sh

test-python: $(VENV)/.installed
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) build deeprec/_ops*.so deeprec/_build_info.py deeprec/serving/lib \
		deeprec/serving/predict_pb2.py *.egg-info data result
