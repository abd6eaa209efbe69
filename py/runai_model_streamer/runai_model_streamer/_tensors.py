"""Torch tensors from the bytes a stream landed: the dtypes and shapes of a safetensors header
in torch's terms, and each tensor made as a view of the buffer its bytes are in.

A tensor costs one ``as_strided`` of a typed view of its buffer (about 2 us), where a byte
slice viewed as the dtype and then as the shape costs three calls (about 6 us): with 100,000
small tensors, as MoE checkpoints have, that is a third of a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from runai_model_streamer._errors import SafetensorsFormatError
from runai_model_streamer._safetensors import DTYPES, PACKED_DTYPES, TensorMetadata

__all__ = ["TensorViews", "dtype_table", "torch_dtype", "torch_shape"]

#: safetensors dtype -> (torch dtype, its item size, whether the shape must be packed)
DtypeTable = dict[str, tuple[torch.dtype, int, bool]]


def torch_dtype(dtype: str, path: str = "", tensor: str = "") -> torch.dtype:
    """The torch dtype of a safetensors dtype string; a clear error when torch lacks it."""
    attribute, bits = DTYPES[dtype]
    resolved = None if attribute is None else getattr(torch, attribute, None)
    if not isinstance(resolved, torch.dtype):
        where = f"{path}: tensor {tensor!r} has " if path else ""
        lacks = (
            f"it has no torch.{attribute}"
            if attribute is not None
            else f"no torch release has a {bits}-bit {dtype} dtype"
        )
        raise SafetensorsFormatError(
            f"{where}dtype {dtype}, which the installed torch {torch.__version__} does not "
            f"support ({lacks})"
        )
    return resolved


def torch_shape(meta: TensorMetadata) -> tuple[int, ...]:
    """The tensor's shape in torch elements: the header's shape, except for packed dtypes (F4:
    two values per element), whose last dimension must then hold whole elements."""
    per_element = PACKED_DTYPES.get(meta.dtype)
    if per_element is None:
        return meta.shape
    if not meta.shape or meta.shape[-1] % per_element:
        raise SafetensorsFormatError(
            f"{meta.path}: tensor {meta.name!r} has dtype {meta.dtype} and shape "
            f"{list(meta.shape)}; torch packs {per_element} values per element, so the last "
            f"dimension must be a multiple of {per_element}"
        )
    return (*meta.shape[:-1], meta.shape[-1] // per_element)


def dtype_table(selected: Sequence[Sequence[TensorMetadata]]) -> DtypeTable:
    """The torch form of every dtype the tensors have; raises (naming a tensor) for a dtype
    the installed torch lacks or a packed shape torch cannot hold, before anything is read."""
    one_of_each = {t.dtype: t for tensors in selected for t in tensors}
    table: DtypeTable = {}
    for name, tensor in one_of_each.items():
        dtype = torch_dtype(name, tensor.path, tensor.name)
        table[name] = (dtype, dtype.itemsize, name in PACKED_DTYPES)
    if any(packed for _, _, packed in table.values()):
        for tensors in selected:
            for tensor in tensors:
                if tensor.dtype in PACKED_DTYPES:
                    torch_shape(tensor)
    return table


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    step = 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


class TensorViews:
    """Makes each tensor from the buffer its bytes landed in (``base[start:start + size]``):
    a view where the bytes are aligned for the dtype, else a copy into aligned memory."""

    def __init__(self, dtypes: DtypeTable) -> None:
        self._dtypes = dtypes
        self._base: torch.Tensor | None = None
        #: per dtype, the current buffer viewed as it (see _typed_view)
        self._typed: dict[torch.dtype, _TypedView] = {}
        self._strides: dict[tuple[int, ...], tuple[int, ...]] = {}

    def make(self, meta: TensorMetadata, base: torch.Tensor, start: int, size: int) -> torch.Tensor:
        dtype, itemsize, packed = self._dtypes[meta.dtype]
        shape = torch_shape(meta) if packed else meta.shape
        if size == 0:
            return torch.empty(shape, dtype=dtype, device=base.device)
        if base is not self._base:
            self._base = base
            self._typed = {}
        typed = self._typed.get(dtype)
        if typed is None:
            typed = self._typed[dtype] = _typed_view(base, dtype, itemsize)
        view, first_byte, first_element = typed
        if view is not None and (start - first_byte) % itemsize == 0:
            strides = self._strides.get(shape)
            if strides is None:
                strides = self._strides[shape] = _contiguous_strides(shape)
            return view.as_strided(shape, strides, first_element + (start - first_byte) // itemsize)
        return _as_tensor(base[start : start + size], shape, dtype, itemsize)


#: a buffer viewed as a dtype (None: it cannot be), the buffer's byte where that view starts,
#: and the view's storage offset (in elements)
_TypedView = tuple[torch.Tensor | None, int, int]


def _typed_view(base: torch.Tensor, dtype: torch.dtype, itemsize: int) -> _TypedView:
    """``base`` (uint8) viewed as ``dtype`` from its first byte aligned for it."""
    first_byte = -base.data_ptr() % itemsize
    usable = (base.numel() - first_byte) // itemsize * itemsize
    if usable <= 0:
        return None, 0, 0
    try:
        view = base[first_byte : first_byte + usable].view(dtype)
    except RuntimeError:  # its storage starts misaligned for the dtype: copy each tensor
        return None, 0, 0
    return view, first_byte, int(view.storage_offset())


def _as_tensor(
    u8: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype, itemsize: int
) -> torch.Tensor:
    if itemsize > 1 and u8.data_ptr() % itemsize:
        # Misaligned for its dtype (the file places it so): copy into aligned memory.
        out = torch.empty(shape, dtype=dtype, device=u8.device)
        out.view(-1).view(torch.uint8).copy_(u8)
        return out
    return u8.view(dtype).view(shape)


#: (dtype, device) pairs whose tensor code this process has run (see run_tensor_code_once)
_RUN: set[tuple[torch.dtype, torch.device]] = set()


def run_tensor_code_once(dtypes: DtypeTable, device: torch.device) -> None:
    """Makes a tensor of each dtype a stream yields from a few bytes, the ways
    :class:`TensorViews` does, before its reads start: library code not run yet in this
    process is read from disk at its first call, and once the reads have started such a read
    waits in the disk's queue behind them (cold, 4 GB: 0.2-0.5 s before the first tensor, where
    one read takes 8 ms)."""
    scratch = torch.zeros(64, dtype=torch.uint8)
    for name, (dtype, itemsize, _) in dtypes.items():
        if (dtype, device) in _RUN:
            continue
        views = TensorViews({name: (dtype, itemsize, False)})
        meta = TensorMetadata("", name, (1,), 0, itemsize, (0, itemsize), "")
        for start in (8, 9):  # aligned (a view) and misaligned (a copy)
            tensor = views.make(meta, scratch, start, itemsize)
            if tensor.device != device:
                tensor.to(device)
        _RUN.add((dtype, device))
