"""Stand-in for llama.cpp's gguf-py, just enough for gen_deepseek2_moe.py --gguf '' (HF checkpoint only).

The generator imports gguf unconditionally. With no GGUF file to write, it still uses gguf's tensor-name table
(to build its plan; the HF names do not depend on it), the quant block sizes (for the byte counts it prints) and
the token-type numbers (for a vocab list only a GGUF would store). Those constants are copied here with the
values gguf-py has. Writing a GGUF (GGUFWriter, quants.quantize) is not supported: use the real gguf-py for that.
"""
from enum import IntEnum


class MODEL_TENSOR(IntEnum):
    TOKEN_EMBD = 0
    OUTPUT_NORM = 1
    OUTPUT = 2
    ATTN_NORM = 3
    ATTN_Q = 4
    ATTN_Q_A = 5
    ATTN_Q_A_NORM = 6
    ATTN_Q_B = 7
    ATTN_KV_A_MQA = 8
    ATTN_KV_A_NORM = 9
    ATTN_K_B = 10
    ATTN_V_B = 11
    ATTN_OUT = 12
    FFN_NORM = 13
    FFN_GATE = 14
    FFN_UP = 15
    FFN_DOWN = 16
    FFN_GATE_INP = 17
    FFN_GATE_EXP = 18
    FFN_UP_EXP = 19
    FFN_DOWN_EXP = 20
    FFN_GATE_SHEXP = 21
    FFN_UP_SHEXP = 22
    FFN_DOWN_SHEXP = 23


T = MODEL_TENSOR
TENSOR_NAMES = {
    T.TOKEN_EMBD: "token_embd", T.OUTPUT_NORM: "output_norm", T.OUTPUT: "output",
    T.ATTN_NORM: "blk.{bid}.attn_norm", T.ATTN_Q: "blk.{bid}.attn_q", T.ATTN_Q_A: "blk.{bid}.attn_q_a",
    T.ATTN_Q_A_NORM: "blk.{bid}.attn_q_a_norm", T.ATTN_Q_B: "blk.{bid}.attn_q_b",
    T.ATTN_KV_A_MQA: "blk.{bid}.attn_kv_a_mqa", T.ATTN_KV_A_NORM: "blk.{bid}.attn_kv_a_norm",
    T.ATTN_K_B: "blk.{bid}.attn_k_b", T.ATTN_V_B: "blk.{bid}.attn_v_b", T.ATTN_OUT: "blk.{bid}.attn_output",
    T.FFN_NORM: "blk.{bid}.ffn_norm", T.FFN_GATE: "blk.{bid}.ffn_gate", T.FFN_UP: "blk.{bid}.ffn_up",
    T.FFN_DOWN: "blk.{bid}.ffn_down", T.FFN_GATE_INP: "blk.{bid}.ffn_gate_inp",
    T.FFN_GATE_EXP: "blk.{bid}.ffn_gate_exps", T.FFN_UP_EXP: "blk.{bid}.ffn_up_exps",
    T.FFN_DOWN_EXP: "blk.{bid}.ffn_down_exps", T.FFN_GATE_SHEXP: "blk.{bid}.ffn_gate_shexp",
    T.FFN_UP_SHEXP: "blk.{bid}.ffn_up_shexp", T.FFN_DOWN_SHEXP: "blk.{bid}.ffn_down_shexp",
}
del T


class GGMLQuantizationType(IntEnum):
    F32 = 0
    F16 = 1
    Q8_0 = 8
    BF16 = 30


Q = GGMLQuantizationType
GGML_QUANT_SIZES = {Q.F32: (1, 4), Q.F16: (1, 2), Q.Q8_0: (32, 2 + 32), Q.BF16: (1, 2)}  # (block size, type size)
del Q


class TokenType(IntEnum):
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3


class _NoGGUF:
    def __getattr__(self, name):
        raise RuntimeError("this gguf is a stand-in for the HF-only path (--gguf ''); put llama.cpp's gguf-py on PYTHONPATH to write GGUFs")


quants = _NoGGUF()


def GGUFWriter(*_a, **_k):  # noqa: N802 (the real one is a class)
    raise RuntimeError("this gguf is a stand-in for the HF-only path (--gguf ''); put llama.cpp's gguf-py on PYTHONPATH to write GGUFs")
