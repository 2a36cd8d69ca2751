"""Writes out the row kernels of DepthwiseConvDense.cs (the methods Dense3x3S1 .. Dense5x5S2), which the JIT needs
unrolled so that every weight is its own register. `python3 DepthwiseConvDense.py` prints them; they replace the
methods in the C# file. Vs lists the vectors per row of a column step ([2, 1]: two-vector steps, then one; measured
no faster for 5x5, see docs/performance.md)."""
def body(K, S, V, ind):
    out = []
    acc = ", ".join(f"a{r}{x} = initial" for r in range(4) for x in range(V))
    out.append(ind + f"TVector {acc};")
    out.append(ind + "float* p = rows + ow;")
    J = 3 * S + K
    for j in range(J):
        users = [(r, j - r * S) for r in range(4) if 0 <= j - r * S < K]
        rmin = min(r for r, _ in users)
        if rmin > 0:
            out.append(ind + f"if (count > {rmin})")
            out.append(ind + "{")
            i2 = ind + "    "
        else:
            i2 = ind
        if j > 0: out.append(i2 + "p += rowStride;")
        for kw in range(K):
            parts = []
            for x in range(V):
                parts.append(f"v{x} = TLanes.Load(p + c{kw}{' + TLanes.Count' if x else ''});")
            for r, kh in users:
                for x in range(V):
                    f = f"a{r}{x} = TLanes.MultiplyAdd(w{kh}{kw}, v{x}, a{r}{x});"
                    parts.append(f if r <= rmin else f"if (count > {r}) {f}")
            out.append(i2 + " ".join(parts))
        if rmin > 0:
            out.append(ind + "}")
    for x in range(V):
        off = "ow" if x == 0 else "ow + TLanes.Count"
        out.append(ind + f"StoreRows<TRows>(output, {off}, a0{x}, a1{x}, a2{x}, a3{x}, b);")
    return out

def method(K, S, Vs):
    out = []
    out.append(f"        /// <summary>{K}x{K} taps, vertical stride {S}: plane row j feeds output row r through kernel row j - {'' if S == 1 else S}r.</summary>")
    out.append(f"        [MethodImpl(MethodImplOptions.AggressiveOptimization)]")
    out.append(f"        private void Dense{K}x{K}S{S}<TRows>(float* rows, float* output, in RowBlock b) where TRows : struct, IRowCount")
    out.append("        {")
    out.append("            int count = TRows.Value;")
    out.append("            float* w = b.Weights;")
    for kh in range(K):
        out.append("            TVector " + ", ".join(f"w{kh}{kw} = TLanes.Splat(w[{kh*K+kw}])" for kw in range(K)) + ";")
    out.append("            int* c = b.ColumnOffset;")
    out.append("            int " + ", ".join(f"c{kw} = c[{kw}]" for kw in range(K)) + ";")
    out.append("            nint rowStride = b.RowStride;")
    out.append("            var initial = TLanes.Splat(b.Bias);")
    out.append("            TVector " + ", ".join(f"v{x}" for x in range(max(Vs))) + ";")
    out.append("            int ow = 0;")
    for i, V in enumerate(Vs):
        last = i == len(Vs) - 1
        cond = "ow < _outWidth" if last else f"ow + {V} * TLanes.Count <= _outWidth"
        out.append(f"            for (; {cond}; ow += {V if V > 1 else ''}{' * ' if V > 1 else ''}TLanes.Count)")
        out.append("            {")
        out += body(K, S, V, "                ")
        out.append("            }")
    out.append("        }")
    return "\n".join(out)
print("\n\n".join(method(K, S, [1]) for K in (3, 5) for S in (1, 2)))
