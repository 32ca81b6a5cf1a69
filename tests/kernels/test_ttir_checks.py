"""The Triton-IR checks used by the sm_90 build script, on IR excerpts with known answers.

The first excerpt is from the forward kernel before the int64-offset fix (``offs_k *
stride_hk`` multiplied in int32, then added to a row pointer); the second is the fixed form.
"""

from __future__ import annotations

from _ttir import atomic_ops, narrow_offset_products

BEFORE_FIX = """
    %h_72 = arith.extsi %stride_hn : i32 to i64
    %h_73 = tt.splat %h_72 : i64 -> tensor<128x1xi64>
    %h_74 = arith.muli %h_71, %h_73 : tensor<128x1xi64>
    %h_75 = tt.splat %h_ptr : !tt.ptr<bf16> -> tensor<128x1x!tt.ptr<bf16>>
    %h_76 = tt.addptr %h_75, %h_74 : tensor<128x1x!tt.ptr<bf16>>, tensor<128x1xi64>
    %h_77 = tt.expand_dims %offs_k {axis = 0 : i32} : tensor<64xi32> -> tensor<1x64xi32>
    %h_78 = tt.splat %stride_hk : i32 -> tensor<1x64xi32>
    %h_79 = arith.muli %h_77, %h_78 : tensor<1x64xi32>
    %h_80 = tt.broadcast %h_76 : tensor<128x1x!tt.ptr<bf16>> -> tensor<128x64x!tt.ptr<bf16>>
    %h_81 = tt.broadcast %h_79 : tensor<1x64xi32> -> tensor<128x64xi32>
    %h_82 = tt.addptr %h_80, %h_81 : tensor<128x64x!tt.ptr<bf16>>, tensor<128x64xi32>
    %v_end = arith.muli %blocks_per_split, %c128_i32 : i32
"""

AFTER_FIX = BEFORE_FIX.replace(
    "tensor<64xi32> -> tensor<1x64xi32>",
    "tensor<64xi64> -> tensor<1x64xi64>",
).replace(
    "%h_79 = arith.muli %h_77, %h_78 : tensor<1x64xi32>",
    "%h_79 = arith.muli %h_77, %h_78 : tensor<1x64xi64>",
)


def test_int32_product_feeding_a_pointer_is_found():
    found = narrow_offset_products(BEFORE_FIX)
    assert len(found) == 1 and found[0].startswith("%h_79 = arith.muli"), found


def test_int64_products_and_non_pointer_int32_products_pass():
    # %v_end is an int32 product too, but it never reaches a tt.addptr.
    assert narrow_offset_products(AFTER_FIX) == []


def test_atomics_are_listed():
    line = "    %3 = tt.atomic_rmw fadd, relaxed, gpu, %1, %2, %m : (tensor<128x!tt.ptr<f32>>) -> x"
    assert atomic_ops(BEFORE_FIX) == []
    assert atomic_ops(BEFORE_FIX + line) == [line.strip()]
