import os
import sys

# Tests import the flat top-level modules (model, sample, ...) from the repository root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the transformers oracle must never reach the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
