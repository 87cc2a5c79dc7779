"""The networks, in torch: the search space and its architecture grammar (:mod:`.space`),
the paper's blocks and nets (:mod:`.model`), the supernet of the search (:mod:`.supernet`),
weight quantization (:mod:`.quant`) and counting of operations and bytes (:mod:`.counting`).
"""
