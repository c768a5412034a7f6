# SPDX-License-Identifier: Apache-2.0
"""Generates ONNX's backend test data (onnx.backend.test) into a directory.

Run with Debian's /usr/bin/python3 (python3-onnx). The generators in ONNX 1.12
use numpy aliases that numpy 1.24 removed, so they are restored first.
Usage: gen_node_data.py OUT_DIR
"""
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")
for _name, _type in (("float", float), ("int", int), ("bool", bool), ("object", object)):
    setattr(np, _name, _type)

from onnx.backend.test.cmd_tools import main  # noqa: E402

sys.argv = ["cmd_tools", "generate-data", "-o", sys.argv[1]]
main()
