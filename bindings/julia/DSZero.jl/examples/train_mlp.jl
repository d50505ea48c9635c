# train_mlp.jl -- examples/c/train_mlp.c in Julia, through DSZero.jl.
#
# The host owns the model (a 2-layer MLP, 32-128-8, softmax cross-entropy),
# computes forward and backward itself in Float32 on weights stored in the
# config's dtype, and hands each gradient to dszero, which does the rest.
# Labels come from a fixed random "teacher", so the loss can fall far below
# ln(8). Matrices are column-major: W1 is (IN, HID), the same memory as the
# C example's row-major fc1.weight of shape (HID, IN).
#
#   julia --project=bindings/julia/DSZero.jl bindings/julia/DSZero.jl/examples/train_mlp.jl \
#         examples/configs/mlp_fp16.json [STEPS]
using DSZero

const IN, HID, OUT = 32, 128, 8

"xorshift64*, uniform in [-1, 1) -- the C example's generator."
mutable struct XorShift
    s::UInt64
end
function urand(r::XorShift)
    r.s ⊻= r.s >> 12
    r.s ⊻= r.s << 25
    r.s ⊻= r.s >> 27
    return Float32((r.s * 0x2545f4914f6cdd1d) >> 40) / 8388608f0 - 1f0
end

# Encoding of the model dtype (Float32, Float16, or :bf16 as UInt16 bits).
storage_type(dt) = dt === :bf16 ? UInt16 : dt
encode(dt, x::Float32) = dt === :bf16 ? bf16_bits(x) : convert(dt, x)
decode(dt, x) = dt === :bf16 ? bf16_to_float32(x) : Float32(x)

# C fills row-major arrays element by element; these have the same order.
init!(dt, A, r, scale) = (for i in eachindex(A); A[i] = encode(dt, scale * urand(r)); end; A)

function make_batch!(x, y, r, teacher)
    for b in axes(x, 2)
        for i in 1:IN
            x[i, b] = urand(r)
        end
        best, bv = 1, -1f30
        for o in 1:OUT
            v = 0f0
            for i in 1:IN
                v += teacher[i, o] * x[i, b]
            end
            v > bv && ((best, bv) = (o, v))
        end
        y[b] = best
    end
end

"Mean cross-entropy and its gradients (scaled by `mult`) into `g`."
function forward_backward!(g, w, x, y, mult)
    W1, b1, W2, b2 = w
    gW1, gb1, gW2, gb2 = g
    B = length(y)
    foreach(a -> fill!(a, 0f0), g)
    h, dh = zeros(Float32, HID, B), zeros(Float32, HID, B)
    loss = 0f0
    logits, p = zeros(Float32, OUT), zeros(Float32, OUT)
    for b in 1:B
        for j in 1:HID
            v = b1[j]
            for i in 1:IN
                v += W1[i, j] * x[i, b]
            end
            h[j, b] = v > 0 ? v : 0f0
        end
        mx, z = -1f30, 0f0
        for o in 1:OUT
            v = b2[o]
            for j in 1:HID
                v += W2[j, o] * h[j, b]
            end
            logits[o] = v
            mx = max(mx, v)
        end
        for o in 1:OUT
            p[o] = exp(logits[o] - mx)
            z += p[o]
        end
        loss += -(logits[y[b]] - mx - log(z)) / B
        for o in 1:OUT
            d = (p[o] / z - (o == y[b] ? 1f0 : 0f0)) / B * Float32(mult)
            gb2[o] += d
            for j in 1:HID
                gW2[j, o] += d * h[j, b]
                dh[j, b] += d * W2[j, o]
            end
        end
        for j in 1:HID
            d = h[j, b] > 0 ? dh[j, b] : 0f0
            gb1[j] += d
            for i in 1:IN
                gW1[i, j] += d * x[i, b]
            end
        end
    end
    return loss
end

function main(config, steps)
    r = XorShift(0x9e3779b97f4a7c15)
    teacher = Float32[urand(r) for i in 1:IN, o in 1:OUT]
    Engine(config) do eng
        st = state(eng)
        dt, B, gas = st.dtype, st.micro_batch_size, st.gradient_accumulation_steps
        T = storage_type(dt)
        params = [init!(dt, Matrix{T}(undef, IN, HID), r, 0.25f0), init!(dt, Vector{T}(undef, HID), r, 0f0),
                  init!(dt, Matrix{T}(undef, HID, OUT), r, 0.1f0), init!(dt, Vector{T}(undef, OUT), r, 0f0)]
        names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
        register_params!(eng, [Param(n, a; bf16 = dt === :bf16) for (n, a) in zip(names, params)])
        r.s ⊻= UInt64(st.rank) * 0xd1b54a32d192ed03   # each rank its own batches
        work = [decode.(dt, a) for a in params]          # Float32 views, refreshed after each step
        grads = [zeros(Float32, size(a)) for a in params]
        x, y = zeros(Float32, IN, B), zeros(Int, B)
        st.rank == 0 && println("dszero $(DSZero.version()): MLP $IN-$HID-$OUT, $dt, micro batch $B x $gas ",
                                "accumulation, rank $(st.rank) of $(st.world_size)")
        first, recent = 0.0, 0.0
        for s in 1:steps
            window, info = 0.0, nothing
            for _ in 1:gas
                mult = loss_scale(eng)
                make_batch!(x, y, r, teacher)
                window += forward_backward!(grads, work, x, y, mult) / gas
                for (i, gr) in enumerate(grads)
                    grad_ready!(eng, i, T === Float32 ? gr : encode.(dt, gr))
                end
                backward!(eng)
                info = step!(eng)
            end
            foreach((wk, a) -> wk .= decode.(dt, a), work, params)
            s == 1 && (first = window)
            recent = s == 1 ? window : 0.9 * recent + 0.1 * window
            if st.rank == 0 && (s == 1 || s % 25 == 0 || info.skipped)
                println("step $(lpad(s, 4))  loss $(round(window; digits = 4))  lr $(info.lr)  ",
                        "loss_scale $(info.loss_scale)", info.skipped ? "  (overflow: step skipped)" : "")
            end
        end
        st.rank == 0 && println("loss: first $(round(first; digits = 4)), last (running mean) $(round(recent; digits = 4))")
        recent < first / 2
    end
end

if abspath(PROGRAM_FILE) == @__FILE__
    isempty(ARGS) && (println(stderr, "usage: train_mlp.jl CONFIG.json [STEPS]"); exit(2))
    exit(main(ARGS[1], length(ARGS) > 1 ? parse(Int, ARGS[2]) : 300) ? 0 : 3)
end
