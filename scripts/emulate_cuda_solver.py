# Literal emulation, in numpy, of the CUDA SolverBackend's cuBLAS/cuSOLVER call sequence
# (src/quant/cuda/solver_backend_cuda.cu: column-major buffers, pointer offsets, uplo, the GPTQ
# sweep's indexing) checked against direct formulas, for machines without a GPU. It is a
# transcription: it checks the conventions, not the CUDA code itself or its kernels.
# Needs numpy and scipy: python3 scripts/emulate_cuda_solver.py
import numpy as np, scipy.linalg as sl
rng = np.random.default_rng(0)
F8 = 8

class Buf:
    def __init__(s, n): s.a = np.zeros(n)
def V(b, off, r, c, ld):  # column-major view
    return np.lib.stride_tricks.as_strided(b.a[off:], shape=(r, c), strides=(F8, ld * F8))
def mat(r, c): return (Buf(r * c), r, c)
def full(M): return V(M[0], 0, M[1], M[2], M[1])

def op(A, t): return A.T if t == 'T' else A
def gemm(ta, tb, m, n, k, al, A, offA, lda, B, offB, ldb, be, C, offC, ldc):
    a = V(A, offA, *( (m, k) if ta == 'N' else (k, m)), lda)
    b = V(B, offB, *( (k, n) if tb == 'N' else (n, k)), ldb)
    c = V(C, offC, m, n, ldc)
    c[:] = al * op(a, ta) @ op(b, tb) + (be * c if be else 0)
def syrk_lower(tr, n, k, al, A, lda, be, C, ldc):
    a = V(A, 0, *((n, k) if tr == 'N' else (k, n)), lda)
    c = V(C, 0, n, n, ldc)
    r = al * (a @ a.T if tr == 'N' else a.T @ a) + (be * c if be else 0)
    il = np.tril_indices(n); c[il] = r[il]
def tri(A, n, uplo):
    a = V(A, 0, n, n, n).copy(); return np.tril(a) if uplo == 'L' else np.triu(a)
def trsm(side, uplo, tr, m, n, al, A, ka, B, ldb):
    t = op(tri(A, ka, uplo), tr); b = V(B, 0, m, n, ldb)
    b[:] = al * (np.linalg.solve(t, b) if side == 'L' else np.linalg.solve(t.T, b.T).T)
def trmm_right(uplo, tr, m, n, A, ka, B, ldb, C, ldc):
    V(C, 0, m, n, ldc)[:] = V(B, 0, m, n, ldb) @ op(tri(A, ka, uplo), tr)
def geam(m, n, al, A, lda, be, B, ldb, C, ldc, ta='N'):
    a = op(V(A, 0, *((m, n) if ta == 'N' else (n, m)), lda), ta)
    V(C, 0, m, n, ldc)[:] = al * a + be * V(B, 0, m, n, ldb)
def potrf(A, n, uplo):
    a = V(A, 0, n, n, n); s = np.tril(a) + np.tril(a, -1).T if uplo == 'L' else np.triu(a) + np.triu(a, 1).T
    L = np.linalg.cholesky(s)
    if uplo == 'L': il = np.tril_indices(n); a[il] = L[il]
    else: iu = np.triu_indices(n); a[iu] = L.T[iu]
def trtri_lower(A, n):  # L⁻¹ in the lower triangle; the strict upper one is not touched
    a = V(A, 0, n, n, n); inv = np.linalg.inv(np.tril(a)); il = np.tril_indices(n); a[il] = inv[il]
def reversed_(M):  # Gpu::reversed: B_ij = A_{n-1-i, n-1-j}
    b = copy(M); full(b)[:] = full(M)[::-1, ::-1]; return b
def potri_lower(A, n):
    a = V(A, 0, n, n, n); L = np.tril(a); inv = np.linalg.inv(L @ L.T); il = np.tril_indices(n); a[il] = inv[il]
def potrs_lower(L, n, B, nrhs):
    l = np.tril(V(L, 0, n, n, n)); b = V(B, 0, n, nrhs, n); b[:] = np.linalg.solve(l @ l.T, b)
def syevdx_top(A, n, k):  # eigenvectors into the first k columns, eigenvalues ascending
    a = V(A, 0, n, n, n); s = np.tril(a) + np.tril(a, -1).T; w, q = np.linalg.eigh(s)
    a[:, :k] = q[:, n - k:]; return w[n - k:]
def syevd(A, n):
    a = V(A, 0, n, n, n); s = np.tril(a) + np.tril(a, -1).T; w, q = np.linalg.eigh(s); a[:] = q; return w
def symmetrize_lower(A, n):
    a = V(A, 0, n, n, n); a[:] = np.tril(a) + np.tril(a, -1).T
def add_diag(A, n, v): a = V(A, 0, n, n, n); a[np.diag_indices(n)] += v
def copy(M): b = Buf(M[0].a.size); b.a[:] = M[0].a; return (b, M[1], M[2])
def transpose(M):
    T = mat(M[2], M[1]); geam(M[2], M[1], 1.0, M[0], M[1], 0.0, T[0], M[2], T[0], M[2], ta='T'); return T
def upload(A):  # host row-major r x c
    r, c = A.shape; t = mat(c, r); t[0].a[:] = A.astype(np.float64).ravel(); return transpose(t)
def download(M): t = transpose(M); return t[0].a.reshape(M[1], M[2]).copy()

# ---------------- the backend's algorithms, transcribed
def stats(X, act_q):  # X tokens x d (row-major); returns device xx, yy, xy
    n, d = X.shape; xx, yy, xy = mat(d, d), mat(d, d), mat(d, d)
    Y = act_q(X)
    xb = Buf(n * d); xb.a[:] = X.ravel(); yb = Buf(n * d); yb.a[:] = Y.ravel()
    syrk_lower('N', d, n, 1.0, xb, d, 1.0, xx[0], d)
    syrk_lower('N', d, n, 1.0, yb, d, 1.0, yy[0], d)
    gemm('N', 'T', d, d, n, 1.0, xb, 0, d, yb, 0, d, 1.0, xy[0], 0, d)
    symmetrize_lower(xx[0], d); symmetrize_lower(yy[0], d)
    return xx, yy, xy

def top_left_singular(F, k):
    b, rows, cols = F; u = mat(rows, k); lam = np.zeros(k)
    if rows <= cols:
        G = mat(rows, rows); syrk_lower('N', rows, cols, 1.0, b, rows, 0.0, G[0], rows)
        w = syevdx_top(G[0], rows, k); z = V(G[0], 0, rows, k, rows)[:, ::-1]; l = w[::-1]
        thr = 1e-12 * max(l[0], 0); kept = max([j + 1 for j in range(k) if l[j] > thr and l[j] > 0], default=0)
        full(u)[:, :kept] = z[:, :kept]; return u, np.maximum(l, 0)
    kc = min(k, cols); G = mat(cols, cols); syrk_lower('T', cols, rows, 1.0, b, rows, 0.0, G[0], cols)
    w = syevdx_top(G[0], cols, kc); z = V(G[0], 0, cols, kc, cols)[:, ::-1].copy(); l = w[::-1]
    thr = 1e-12 * max(l[0], 0); kept = max([j + 1 for j in range(kc) if l[j] > thr and l[j] > 0], default=0)
    lam[:kc] = np.maximum(l, 0)
    zb = Buf(cols * kept); V(zb, 0, cols, kept, cols)[:] = z[:, :kept] / np.sqrt(l[:kept])
    uk = mat(rows, kept); gemm('N', 'N', rows, kept, cols, 1.0, b, 0, rows, zb, 0, cols, 0.0, uk[0], 0, rows)
    Q, R = np.linalg.qr(full(uk)); Q = Q * np.where(np.diag(R) < 0, -1, 1)
    full(u)[:, :kept] = Q; return u, lam

def covs(xx, yy, xy, d, eps_rel, consistent):
    ex = eps_rel * np.trace(full(xx)) / d; ey = eps_rel * np.trace(full(yy)) / d
    sx, sy, sxy = copy(xx), copy(yy), copy(xy)
    add_diag(sx[0], d, ex); add_diag(sy[0], d, ey); add_diag(sxy[0], d, np.sqrt(ex * ey) if consistent else 0)
    return sx, sy, sxy

def chol(S, d): L = copy(S); potrf(L[0], d, 'L'); return L

def schur_factor(sx, sy, sxy, d):
    Ly = chol(sy, d); S = transpose(sxy)
    trsm('L', 'L', 'N', d, d, 1.0, Ly[0], d, S[0], d)
    M = copy(sx); syrk_lower('T', d, d, -1.0, S[0], d, 1.0, M[0], d)
    lam = syevd(M[0], d); tol = d * np.finfo(float).eps * np.max(np.diag(full(sx)))
    first = int(np.sum(~(lam > tol))); first = next((i for i in range(d) if lam[i] > tol), d); r = d - first
    mq = mat(d, r); full(mq)[:] = full(M)[:, first:] * np.sqrt(lam[first:]); return mq

def init_lr(Wd, mq, k):
    d_out, d = Wd[1], Wd[2]; r = mq[2]; F = mat(d_out, r)
    gemm('N', 'N', d_out, r, d, 1.0, Wd[0], 0, d_out, mq[0], 0, d, 0.0, F[0], 0, d_out)
    u, lam = top_left_singular(F, k); Vm = mat(d, k)
    gemm('T', 'N', d, k, d_out, 1.0, Wd[0], 0, d_out, u[0], 0, d_out, 0.0, Vm[0], 0, d)
    return u, Vm, lam

def init_lr_direct(Wd, sx, sxy, Ly, k):  # d_out <= d: G = W Σx Wᵀ − TᵀT, T = L_y⁻¹ Σyx Wᵀ
    d_out, d = Wd[1], Wd[2]; T = mat(d, d_out)
    gemm('T', 'T', d, d_out, d, 1.0, sxy[0], 0, d, Wd[0], 0, d_out, 0.0, T[0], 0, d)
    trsm('L', 'L', 'N', d, d_out, 1.0, Ly[0], d, T[0], d)
    A = mat(d, d_out); gemm('N', 'T', d, d_out, d, 1.0, sx[0], 0, d, Wd[0], 0, d_out, 0.0, A[0], 0, d)
    G = mat(d_out, d_out); gemm('N', 'N', d_out, d_out, d, 1.0, Wd[0], 0, d_out, A[0], 0, d, 0.0, G[0], 0, d_out)
    syrk_lower('T', d_out, d, -1.0, T[0], d, 1.0, G[0], d_out)
    lam = syevdx_top(G[0], d_out, k); u = mat(d_out, k); full(u)[:] = full(G)[:, :k][:, ::-1]
    Vm = mat(d, k); gemm('T', 'N', d, k, d_out, 1.0, Wd[0], 0, d_out, u[0], 0, d_out, 0.0, Vm[0], 0, d)
    return u, Vm, lam[::-1]

def update_quant_target(Wd, u, Vm, k, sxy, Ly):
    d_out, d = Wd[1], Wd[2]; A = copy(Wd)
    if k: gemm('N', 'T', d_out, d, k, -1.0, u[0], 0, d_out, Vm[0], 0, d, 1.0, A[0], 0, d_out)
    T = mat(d, d_out); gemm('T', 'T', d, d_out, d, 1.0, sxy[0], 0, d, A[0], 0, d_out, 0.0, T[0], 0, d)
    potrs_lower(Ly[0], d, T[0], d_out); t = transpose(T); t[0].a[:] = t[0].a.astype(np.float32); return t

def update_lr(Wd, Wh, sxy, Lx, k):
    d_out, d = Wd[1], Wd[2]; G = mat(d_out, d)
    gemm('N', 'T', d_out, d, d, 1.0, Wh[0], 0, d_out, sxy[0], 0, d, 0.0, G[0], 0, d_out)
    trsm('R', 'L', 'T', d_out, d, 1.0, Lx[0], d, G[0], d_out)
    F = mat(d_out, d); trmm_right('L', 'N', d_out, d, Lx[0], d, Wd[0], d_out, F[0], d_out)
    geam(d_out, d, 1.0, F[0], d_out, -1.0, G[0], d_out, F[0], d_out)
    u, lam = top_left_singular(F, k); Vm = mat(d, k)
    gemm('T', 'N', d, k, d_out, 1.0, F[0], 0, d_out, u[0], 0, d_out, 0.0, Vm[0], 0, d)
    trsm('L', 'L', 'T', d, k, 1.0, Lx[0], d, Vm[0], d); return u, Vm, lam

def qcode(w, s, z, maxq): return int(min(max(np.rint(w / s) + z, 0), maxq))
def grid(row, bits=4):  # symmetric, mse clip (choose_params)
    lo, hi = min(row.min(), 0), max(row.max(), 0); maxq = 2 ** bits - 1
    def g(p): s = np.float32(p * max(-lo, hi) / 7); return (np.float64(s) if s > 0 else 1.0, 8.0)
    best, be = g(1.0), np.inf
    for st in range(31):
        s, z = g(1.0 - 0.01 * st); e = sum((x - s * (qcode(x, s, z, maxq) - z)) ** 2 for x in row)
        if e < be: be, best = e, (s, z)
    return best

def gptq_device(w, H, B=48):  # per-row grids, no act_order
    d_out, n = w[1], w[2]; h = copy(H)
    params = [grid(full(w)[r]) for r in range(d_out)]
    hd = np.diag(full(h)).copy(); f = reversed_(h); add_diag(f[0], n, 0.01 * hd.mean())
    potrf(f[0], n, 'L'); trtri_lower(f[0], n); h = reversed_(f)  # R = P L⁻¹ P, L = chol(P H P)
    codes = np.zeros((d_out, n), int); err = mat(d_out, min(B, n)); W = full(w); R = lambda a, b: h[0].a[a + b * n]
    for i1 in range(0, n, B):
        i2 = min(i1 + B, n)
        for r in range(d_out):
            s, z = params[r]
            for i in range(i2 - i1):
                j = i1 + i; c = qcode(W[r, j], s, z, 15); codes[r, j] = c
                e = (W[r, j] - s * (c - z)) / R(j, j); err[0].a[r + i * d_out] = e
                for jj in range(j + 1, i2): W[r, jj] -= e * R(j, jj)
        if i2 < n:
            gemm('N', 'N', d_out, n - i2, i2 - i1, -1.0, err[0], 0, d_out, h[0], i1 + i2 * n, n, 1.0, w[0], i2 * d_out, d_out)
    return codes, params

def gptq_rowmajor(W, H, B=48):  # gptq.cpp, row-major, for reference
    W = W.astype(np.float64).copy(); n = W.shape[1]; H = H + 0.01 * np.mean(np.diag(H)) * np.eye(n)
    R = np.linalg.cholesky(np.linalg.inv(H)).T  # upper, H^-1 = R^T R
    params = [grid(W[r]) for r in range(W.shape[0])]; codes = np.zeros(W.shape, int)
    for i1 in range(0, n, B):
        i2 = min(i1 + B, n); E = np.zeros((W.shape[0], i2 - i1))
        for r in range(W.shape[0]):
            s, z = params[r]
            for i in range(i2 - i1):
                j = i1 + i; c = qcode(W[r, j], s, z, 15); codes[r, j] = c
                e = (W[r, j] - s * (c - z)) / R[j, j]; E[r, i] = e; W[r, j + 1:i2] -= e * R[j, j + 1:i2]
        W[:, i2:] -= E @ R[i1:i2, i2:]
    return codes

# ---------------- checks
d, n, d_out, k = 100, 900, 40, 6
X = rng.normal(size=(n, d)) * np.where(np.arange(d) % 7 == 3, 6, 1)
X = X.astype(np.float32).astype(np.float64)
def aq(X):
    s = (0.9 * np.abs(X).max(1, keepdims=True) / 7); return s * np.clip(np.rint(X / s), -8, 7)
W = (rng.normal(size=(d_out, d)) / np.sqrt(d)).astype(np.float32)
xx, yy, xy = stats(X, aq); Y = aq(X)
print('stats', np.abs(full(xx) - X.T @ X).max(), np.abs(full(yy) - Y.T @ Y).max(), np.abs(download(xy) - X.T @ Y).max())
sx, sy, sxy = covs(xx, yy, xy, d, 1e-2, True)
Sx, Sy, Sxy = full(sx).copy(), full(sy).copy(), full(sxy).copy()  # Sxy = XYᵀ + ridge
Msd = Sx - Sxy @ np.linalg.solve(Sy, Sxy.T)
mq = schur_factor(sx, sy, sxy, d); print('schur factor', np.abs(full(mq) @ full(mq).T - Msd).max() / np.abs(Msd).max())
Wd = upload(W); print('upload', np.abs(download(Wd) - W).max(), np.abs(full(Wd) - W).max())
for dout_case in (32, 12):
    Wc = W[:dout_case]; Wdc = upload(Wc)
    u, Vm, lam = init_lr(Wdc, mq, k)
    ev = np.sort(np.linalg.eigvalsh(Wc @ Msd @ Wc.T))[::-1][:k]
    U = download(u); Vh = download(Vm)
    print('init_lr d_out', dout_case, 'eig', np.abs(lam - ev).max() / ev[0], 'V=WᵀU', np.abs(Vh - Wc.T @ U).max(), 'UᵀU=I', np.abs(U.T @ U - np.eye(k)).max())
Ly = chol(sy, d)
for dout_case in (32, 12):  # the direct route (d_out <= d): the same eigenpairs as the factor's
    Wc = W[:dout_case]; ud, Vd, lamd = init_lr_direct(upload(Wc), sx, sxy, Ly, k)
    uf, Vf, lamf = init_lr(upload(Wc), mq, k); Ud, Uf = download(ud), download(uf)
    print('init_lr_direct d_out', dout_case, 'eig', np.abs(lamd - lamf).max() / lamf[0],
          'subspace', np.abs(Ud @ Ud.T - Uf @ Uf.T).max(), 'V=WᵀU', np.abs(download(Vd) - Wc.T @ Ud).max())
u, Vm, lam = init_lr(Wd, mq, k); U, Vh = download(u), download(Vm)
t = update_quant_target(Wd, u, Vm, k, sxy, Ly)
ref = ((W - U @ Vh.T) @ Sxy @ np.linalg.inv(Sy)).astype(np.float32)
print('update_quant_target', np.abs(download(t) - ref).max() / np.abs(ref).max())
T0 = download(t)
codes, params = gptq_device(t, sy)
codes_ref = gptq_rowmajor(T0, Sy)
print('gptq codes equal', (codes == codes_ref).mean())
Wh = np.array([[params[r][0] * (codes[r, j] - params[r][1]) for j in range(d)] for r in range(d_out)], np.float32)
Lx = chol(sx, d); u2, V2, lam2 = update_lr(Wd, upload(Wh), sxy, Lx, k)
Bm = W - Wh @ Sxy.T @ np.linalg.inv(Sx); ev2 = np.sort(np.linalg.eigvalsh(Bm @ Sx @ Bm.T))[::-1][:k]
U2, V2h = download(u2), download(V2)
print('update_lr eig', np.abs(lam2 - ev2).max() / ev2[0], 'V = BᵀU', np.abs(V2h - Bm.T @ U2).max())
# eq. 2 via the device formula vs the data
A = upload(W.astype(np.float64) - U2 @ V2h.T); T = mat(d_out, d)
def tr(a, b, c):
    gemm('N', 'N', d_out, d, d, 1.0, a[0], 0, d_out, b[0], 0, d, 0.0, T[0], 0, d_out); return float(T[0].a @ c[0].a)
WhD = upload(Wh); obj = tr(A, xx, A) - 2 * tr(A, xy, WhD) + tr(WhD, yy, WhD)
direct = np.sum((X @ W.T - Y @ Wh.T.astype(np.float64) - X @ V2h @ U2.T) ** 2)
print('objective', obj, direct, abs(obj - direct) / direct)
# same R for both: does the sweep itself agree?
h = copy(sy); hd = np.diag(full(h)).copy(); add_diag(h[0], d, 0.01 * hd.mean())
f = reversed_(h); potrf(f[0], d, 'L'); trtri_lower(f[0], d); Rdev = np.triu(full(reversed_(f)))
Hd = Sy + 0.01 * np.mean(np.diag(Sy)) * np.eye(d); Rref = np.linalg.cholesky(np.linalg.inv(Hd)).T
print('R diff', np.abs(Rdev - Rref).max() / np.abs(Rref).max(), 'cond H', np.linalg.cond(Hd))
def gptq_rowmajor_R(W, R, B=48):
    W = W.astype(np.float64).copy(); n = W.shape[1]
    params = [grid(W[r]) for r in range(W.shape[0])]; codes = np.zeros(W.shape, int)
    for i1 in range(0, n, B):
        i2 = min(i1 + B, n); E = np.zeros((W.shape[0], i2 - i1))
        for r in range(W.shape[0]):
            s, z = params[r]
            for i in range(i2 - i1):
                j = i1 + i; c = qcode(W[r, j], s, z, 15); codes[r, j] = c
                e = (W[r, j] - s * (c - z)) / R[j, j]; E[r, i] = e; W[r, j + 1:i2] -= e * R[j, j + 1:i2]
        W[:, i2:] -= E @ R[i1:i2, i2:]
    return codes
print('same R, codes equal', (gptq_rowmajor_R(T0, Rdev) == codes).mean())
print('ref R, codes equal', (gptq_rowmajor_R(T0, Rref) == codes_ref).mean())
