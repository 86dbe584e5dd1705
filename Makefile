# Developer entry points. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv test demo

venv: $(STAMP)

# Re-install only when the project metadata changes; the install is editable, so
# source edits need no re-install.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

test: venv
	$(VENV)/bin/python -m pytest -q tests

# Parse, print, re-parse and compile the example kernels with their real compilers; then
# build examples/ (an "existing C++ repo") with `scons target=T` for every platform and
# print what was built and how it was verified (examples/demo.py).
demo: venv
	$(VENV)/bin/xpiler roundtrip examples/kernels
	$(VENV)/bin/python examples/demo.py
