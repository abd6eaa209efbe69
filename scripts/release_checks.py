"""The checks of scripts/rehearse-release: reading ELF and Mach-O binaries (architecture,
minimum OS, needed libraries, exports) and checking a repaired wheel against its platform's
policy; and the report's table."""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path

from release_targets import Package, Platform

ELF_MACHINES = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64"}  # e_machine 62, 183
MACHO_CPUS = {0x01000007: "x86_64", 0x0100000C: "arm64"}
# Symbols of the C++ runtime (libc++/libstdc++ and the C++ ABI; the C library's own __cxa_atexit
# family excepted). None may be left undefined, or the library would need a C++ runtime from the
# system. (The unwinder, _Unwind_*, is part of libSystem on macOS.)
CXX_RUNTIME = re.compile(
    r"^_?(_ZNSt|_ZSt|_ZNKSt|_ZTVSt|_ZTISt|_ZdlPv|_ZdaPv|_Znwm|_Znam|__gxx_personality"
    r"|__cxa_(?!atexit$|finalize$|thread_atexit_impl$))"
)
# macOS functions newer than the oldest deployment target we could pick: importing one raises the
# real minimum OS (dyld fails to load the library on an older macOS).
MACOS_SYMBOL_SINCE = {
    "_aligned_alloc": "10.15",
    "_clock_gettime": "10.12",
    "_os_unfair_lock_lock": "10.12",
    "_pipe2": "27.0",  # curl's configure finds it in new SDKs (scripts/build-tls-deps)
    "_dup3": "27.0",
}
# What zig's Mach-O linker exports beyond -exported_symbols_list: the weak operator new/delete of
# the libc++ it links in, and two linker-made symbols (docs/RELEASING.md, "Known differences").
ZIG_MACHO_EXTRA_EXPORTS = re.compile(
    r"^(__Z(nw|na)m(St11align_val_t)?|__Z(dl|da)Pvm?(St11align_val_t)?|___dso_handle|__mh_dylib_header)$"
)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def read_elf(data: bytes) -> dict:
    from io import BytesIO

    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection
    from elftools.elf.sections import SymbolTableSection

    elf = ELFFile(BytesIO(data))
    info = {
        "format": "ELF",
        "class": elf.elfclass,
        "type": elf["e_type"],
        "arch": ELF_MACHINES.get(elf["e_machine"], elf["e_machine"]),
        "needed": [],
        "rpath": [],
        "symbol_versions": [],
        "exported": [],
        "undefined": [],
    }
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    info["needed"].append(tag.needed)
                elif tag.entry.d_tag in ("DT_RPATH", "DT_RUNPATH"):
                    info["rpath"].append(getattr(tag, "rpath", None) or tag.runpath)
        elif isinstance(section, GNUVerNeedSection):
            for _, auxiliaries in section.iter_versions():
                info["symbol_versions"].extend(a.name for a in auxiliaries)
        elif isinstance(section, SymbolTableSection) and section.name == ".dynsym":
            for symbol in section.iter_symbols():
                if not symbol.name:
                    continue
                if symbol["st_shndx"] == "SHN_UNDEF":
                    info["undefined"].append(symbol.name)
                elif (
                    symbol["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
                    and symbol["st_other"]["visibility"] == "STV_DEFAULT"
                ):
                    info["exported"].append(symbol.name)
    glibc = [
        v[len("GLIBC_") :] for v in info["symbol_versions"] if re.fullmatch(r"GLIBC_[0-9.]+", v)
    ]
    info["min_os"] = max(glibc, key=version_tuple) if glibc else None
    return info


LC_REQ_DYLD = 0x80000000  # load command numbers: <mach-o/loader.h>
LC_SYMTAB = 0x2
LC_LOAD_DYLIB, LC_ID_DYLIB = 0xC, 0xD
LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB = 0x18 | LC_REQ_DYLD, 0x1F | LC_REQ_DYLD
LC_RPATH = 0x1C | LC_REQ_DYLD
LC_VERSION_MIN_MACOSX, LC_BUILD_VERSION = 0x24, 0x32
LC_DYLD_INFO_ONLY, LC_DYLD_EXPORTS_TRIE = 0x22 | LC_REQ_DYLD, 0x33 | LC_REQ_DYLD
PLATFORM_MACOS = 1


def _macho_version(value: int) -> str:
    return f"{value >> 16}.{(value >> 8) & 0xFF}" + (f".{value & 0xFF}" if value & 0xFF else "")


def read_macho(data: bytes) -> dict:
    magic = struct.unpack_from("<I", data)[0]
    if magic != 0xFEEDFACF:
        raise ValueError(f"not a thin 64-bit little-endian Mach-O file (magic {magic:#x})")
    _, cputype, _, filetype, ncmds, _, _, _ = struct.unpack_from("<IiiIIIII", data)
    info = {
        "format": "Mach-O",
        "arch": MACHO_CPUS.get(cputype & 0xFFFFFFFF, f"cputype {cputype:#x}"),
        "type": {6: "MH_DYLIB"}.get(filetype, f"filetype {filetype}"),
        "needed": [],
        "rpath": [],
        "min_os": None,
        "os_platform": None,
        "exported": [],
        "undefined": [],
    }
    offset = 32
    export_trie = None
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, offset)
        if cmd in (LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB, LC_ID_DYLIB, LC_RPATH):
            name_offset = struct.unpack_from("<I", data, offset + 8)[0]
            name = data[offset + name_offset : offset + size].split(b"\0")[0].decode()
            if cmd == LC_ID_DYLIB:
                info["install_name"] = name
            elif cmd == LC_RPATH:
                info["rpath"].append(name)
            else:
                info["needed"].append(name)
        elif cmd == LC_BUILD_VERSION:
            os_platform, minos = struct.unpack_from("<II", data, offset + 8)
            info["os_platform"], info["min_os"] = os_platform, _macho_version(minos)
        elif cmd == LC_VERSION_MIN_MACOSX:
            info["os_platform"] = PLATFORM_MACOS
            info["min_os"] = _macho_version(struct.unpack_from("<I", data, offset + 8)[0])
        elif cmd == LC_SYMTAB:  # undefined external symbols: what the library imports
            symoff, nsyms, stroff, _ = struct.unpack_from("<IIII", data, offset + 8)
            for i in range(nsyms):
                strx, n_type, _, _, _ = struct.unpack_from("<IBBHQ", data, symoff + 16 * i)
                if n_type & 0x01 and not n_type & 0xE0 and n_type & 0x0E == 0:
                    info["undefined"].append(data[stroff + strx :].split(b"\0", 1)[0].decode())
        elif cmd == LC_DYLD_INFO_ONLY:
            export_trie = struct.unpack_from("<10I", data, offset + 8)[8:10]
        elif cmd == LC_DYLD_EXPORTS_TRIE:
            export_trie = struct.unpack_from("<II", data, offset + 8)
        offset += size
    if export_trie:  # what dyld really exports
        start, size = export_trie
        info["exported"] = _export_trie_names(data[start : start + size])
    return info


def _uleb128(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position


def _export_trie_names(trie: bytes) -> list[str]:
    names: list[str] = []
    pending = [(0, "")]
    while pending:
        node, prefix = pending.pop()
        terminal_size, position = _uleb128(trie, node)
        if terminal_size:
            names.append(prefix)
        position += terminal_size
        children = trie[position]
        position += 1
        for _ in range(children):
            end = trie.index(b"\0", position)
            edge = trie[position:end].decode()
            child, position = _uleb128(trie, end + 1)
            pending.append((child, prefix + edge))
    return sorted(names)


def read_binary(data: bytes) -> dict | None:
    if data[:4] == b"\x7fELF":
        return read_elf(data)
    if data[:4] in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        return read_macho(data)
    return None


# ---- checking a wheel -----------------------------------------------------------------------


def manylinux2014_libraries() -> set[str]:
    """The libraries a manylinux2014 (manylinux_2_17) wheel may need, from auditwheel's policy."""
    import auditwheel.policy

    policies = Path(auditwheel.policy.__file__).parent / "manylinux-policy.json"
    for policy in json.loads(policies.read_text()):
        if policy["name"] == "manylinux_2_17":
            return set(policy["lib_whitelist"])
    raise RuntimeError(f"no manylinux_2_17 policy in {policies}")


MACOS_SYSTEM_LIBRARIES = {"/usr/lib/libSystem.B.dylib", "/usr/lib/libc++.1.dylib"}
CXX_RUNTIME_LIBRARIES = re.compile(
    r"^(libstdc\+\+|libc\+\+|libc\+\+abi|libgcc_s|libunwind)\b|/libc\+\+"
)


def check_binary(
    path: str, info: dict, plat: Platform, allowed: set[str], exports: str
) -> list[str]:
    problems = []
    where = path
    if info["arch"] != plat.arch:
        problems.append(f"{where}: built for {info['arch']}, the wheel is for {plat.arch}")
    if plat.os == "linux":
        if info["format"] != "ELF" or info["class"] != 64 or info["type"] != "ET_DYN":
            problems.append(f"{where}: not a 64-bit ELF shared library ({info['type']})")
        if info["min_os"] is None or version_tuple(info["min_os"]) > version_tuple(plat.min_os):
            problems.append(f"{where}: needs glibc {info['min_os']}, more than {plat.min_os}")
        for version in info["symbol_versions"]:
            if not version.startswith("GLIBC_"):
                problems.append(f"{where}: needs symbol version {version} (not glibc)")
        for library in info["needed"]:
            # The dynamic loader is glibc's own (zig names it for __tls_get_addr).
            if library not in allowed and library not in (
                "ld-linux-x86-64.so.2",
                "ld-linux-aarch64.so.1",
            ):
                problems.append(f"{where}: needs {library}, outside the manylinux2014 policy")
        for rpath in info["rpath"]:
            if not rpath.startswith("$ORIGIN"):
                problems.append(f"{where}: RPATH/RUNPATH {rpath} is not relative to $ORIGIN")
    else:
        if info["format"] != "Mach-O" or info["type"] != "MH_DYLIB":
            problems.append(f"{where}: not a Mach-O dylib ({info['type']})")
        if info["os_platform"] != PLATFORM_MACOS:
            problems.append(f"{where}: platform {info['os_platform']} is not macOS")
        if info["min_os"] != plat.min_os:
            problems.append(f"{where}: minimum macOS {info['min_os']}, expected {plat.min_os}")
        for library in info["needed"]:
            if library not in MACOS_SYSTEM_LIBRARIES:
                problems.append(f"{where}: links {library}, outside libSystem/libc++")
        for rpath in info["rpath"]:
            if not rpath.startswith(("@loader_path", "@rpath")):
                problems.append(f"{where}: LC_RPATH {rpath} is absolute")
        for symbol in info["undefined"]:
            since = MACOS_SYMBOL_SINCE.get(symbol)
            if since and info["min_os"] and version_tuple(since) > version_tuple(info["min_os"]):
                problems.append(
                    f"{where}: imports {symbol} (macOS {since}) but claims macOS {info['min_os']}"
                )
    runtime_libraries = [lib for lib in info["needed"] if CXX_RUNTIME_LIBRARIES.search(lib)]
    if runtime_libraries:
        problems.append(f"{where}: needs the C++ runtime from the system: {runtime_libraries}")
    runtime_symbols = sorted(s for s in info["undefined"] if CXX_RUNTIME.match(s))
    if runtime_symbols:
        problems.append(f"{where}: C++ runtime symbols left undefined: {runtime_symbols[:5]}")
    prefix = f"_{exports}" if info["format"] == "Mach-O" else exports
    api = [s for s in info["exported"] if s.startswith(prefix)]
    extra = [
        s
        for s in info["exported"]
        if not s.startswith(prefix)
        and not (info["format"] == "Mach-O" and ZIG_MACHO_EXTRA_EXPORTS.match(s))
    ]
    if not api or extra:
        problems.append(f"{where}: exports {len(api)} {exports}* symbols and {sorted(extra)[:8]}")
    return problems


def check_wheel(wheel: Path, plat: Platform, package: Package, version: str) -> dict:
    from packaging.utils import parse_wheel_filename

    _, wheel_version, _, tags = parse_wheel_filename(wheel.name)
    problems: list[str] = []
    expected_tags = {f"py3-none-{p}" for p in plat.release_tags}
    found_tags = {str(t) for t in tags}
    if found_tags != expected_tags:
        problems.append(
            f"{wheel.name}: tags {sorted(found_tags)}, expected {sorted(expected_tags)}"
        )
    if str(wheel_version) != version:
        problems.append(f"{wheel.name}: version {wheel_version}, expected {version}")
    binaries = {}
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        wheel_file = next(n for n in names if n.endswith(".dist-info/WHEEL"))
        fields = [
            line.split(": ", 1)
            for line in archive.read(wheel_file).decode().splitlines()
            if ": " in line
        ]
        if {v for k, v in fields if k == "Tag"} != expected_tags:
            problems.append(f"{wheel_file}: Tag lines {[v for k, v in fields if k == 'Tag']}")
        if ("Root-Is-Purelib", "false") not in [tuple(f) for f in fields]:
            problems.append(f"{wheel_file}: Root-Is-Purelib is not false")
        library = f"{package.module}/{package.filename(plat)}"
        if library not in names:
            problems.append(f"{wheel.name}: no {library}")
        allowed = manylinux2014_libraries() if plat.os == "linux" else set()
        for member in names:
            data = archive.read(member)
            info = read_binary(data)
            if info is None:
                continue
            problems += check_binary(member, info, plat, allowed, package.exports)
            binaries[member] = {
                "format": info["format"],
                "arch": info["arch"],
                "min_os": info["min_os"],
                "needs": info["needed"],
                "cxx_runtime": "linked in"
                if not any(CXX_RUNTIME.match(s) for s in info["undefined"])
                and not any(CXX_RUNTIME_LIBRARIES.search(lib) for lib in info["needed"])
                else "from the system",
                "exports": sorted(info["exported"]),
                "bytes": len(data),
            }
    if not binaries:
        problems.append(f"{wheel.name}: no native binary inside")
    return {
        "wheel": wheel.name,
        "tags": sorted(found_tags),
        "binaries": binaries,
        "problems": problems,
    }


def table(report: dict) -> str:
    """The wheels as a Markdown table (docs/RELEASING.md shows the last one)."""
    lines = [
        "| wheel | arch | minimum OS | size | needs |",
        "|---|---|---|---|---|",
    ]
    for name, result in report["wheels"].items():
        for binary in result["binaries"].values():
            min_os = ("glibc " if name.startswith("linux") else "macOS ") + str(binary["min_os"])
            size = Path(result["path"]).stat().st_size if "path" in result else binary["bytes"]
            lines.append(
                f"| {result['wheel']} | {binary['arch']} | {min_os} | {size / 1e6:.1f} MB | "
                f"{', '.join(binary['needs'])} |"
            )
    return "\n".join(lines)
