"""z3-backed analyses: sketch repair of small wrong pieces (repair.py) and the execution
oracle it and the LLM passes verify against (oracle.py)."""
