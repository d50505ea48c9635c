# runtests.jl -- DSZero.jl's tests (`Pkg.test("DSZero")`), the same ground as
# the Rust crate's: struct layouts against the C compiler, training to
# convergence in fp32/fp16/bf16, errors carrying the library's message,
# finalizer and close, the log callback, a checkpoint round trip.
# Needs the library (ENV["DSZERO_LIBRARY"] or the checkout's build/src).
using DSZero
using DSZero: LibDSZero as L
using Test

const quiet = (level, msg) -> nothing
const ADAM = """{"train_micro_batch_size_per_gpu": 1, "optimizer": {"type": "AdamW", "params": {"lr": 0.05, "weight_decay": 0.0}}}"""

@testset "DSZero" begin

@testset "version" begin
    @test DSZero.version() == DSZero.HEADER_VERSION
    @test L.dsz_version_number() == L.DSZ_VERSION_NUMBER
    @test DSZero.status_string(L.DSZ_ERR_CONFIG) == "invalid configuration"
end

@testset "struct layouts match the C compiler" begin
    cc = Sys.which("cc")
    inc = normpath(joinpath(@__DIR__, "..", "..", "..", "..", "include"))
    if cc === nothing || !isfile(joinpath(inc, "dszero.h"))
        @warn "no C compiler or dszero.h: layout test skipped"
    else
        structs = (L.dsz_init_options, L.dsz_param, L.dsz_param_group, L.dsz_step_info, L.dsz_engine_state,
                   L.DLDevice, L.DLDataType, L.DLTensor, L.DLManagedTensor)
        prog = IOBuffer()
        println(prog, "#include <stdio.h>\n#include <stddef.h>\n#include <dszero.h>\nint main(void) {")
        for T in structs
            name = nameof(T)
            println(prog, "printf(\"%zu\\n\", sizeof($name));")
            for f in fieldnames(T)
                println(prog, "printf(\"%zu\\n\", offsetof($name, $f));")
            end
        end
        println(prog, "return 0; }")
        mktempdir() do dir
            src, exe = joinpath(dir, "layout.c"), joinpath(dir, "layout")
            write(src, take!(prog))
            run(`$cc -std=c11 -I$inc $src -o $exe`)
            c = parse.(Int, split(strip(read(`$exe`, String))))
            jl = Int[]
            for T in structs
                push!(jl, sizeof(T))
                append!(jl, Int.(fieldoffset.(T, 1:fieldcount(T))))
            end
            @test c == jl
        end
    end
end

@testset "bf16 bits" begin
    @test bf16_bits(1.0f0) == 0x3f80
    @test bf16_bits(reinterpret(Float32, 0x3f808000)) == 0x3f80   # tie, down to even
    @test bf16_bits(reinterpret(Float32, 0x3f818000)) == 0x3f82   # tie, up to even
    @test all(b -> isnan(bf16_to_float32(b)) || bf16_bits(bf16_to_float32(b)) == b, UInt16(0):typemax(UInt16))
end

target(i) = 2f0 * sin(0.37f0 * (i - 1))

# Trains 0.5 |w - target|^2 on `w` (an array of the model dtype) and returns
# the final max error and the engine's state.
function quadratic(config, w; bf16 = false, steps = 300)
    dec = bf16 ? bf16_to_float32 : Float32
    enc = bf16 ? bf16_bits : x -> convert(eltype(w), x)
    Engine(config; log = quiet, cpu_threads = 2) do eng
        register_params!(eng, [Param("w", w; bf16 = bf16)])
        for _ in 1:steps
            m = loss_scale(eng)
            g = [enc(Float32((dec(w[i]) - target(i)) * m)) for i in eachindex(w)]
            grad_ready!(eng, 1, reshape(g, size(w)))
            backward!(eng)
            step!(eng)
        end
        maximum(abs(dec(w[i]) - target(i)) for i in eachindex(w)), state(eng)
    end
end

@testset "training converges" begin
    err, st = quadratic(ADAM, zeros(Float32, 4, 3))
    @test err < 1e-2
    @test (st.global_steps, st.n_params, st.n_elements, st.dtype) == (300, 1, 12, Float32)

    fp16 = """{"train_micro_batch_size_per_gpu": 1, "fp16": {"enabled": true, "initial_scale_power": 16},
               "optimizer": {"type": "AdamW", "params": {"lr": 0.05, "weight_decay": 0.0}}}"""
    err, st = quadratic(fp16, zeros(Float16, 12))
    @test err < 2e-2
    @test st.skipped_steps > 0          # 2^16 overflows fp16 first, as in DeepSpeed
    @test st.dtype == Float16

    bf = """{"train_micro_batch_size_per_gpu": 1, "bf16": {"enabled": true},
             "optimizer": {"type": "AdamW", "params": {"lr": 0.05, "weight_decay": 0.0}}}"""
    err, st = quadratic(bf, fill(bf16_bits(0f0), 6, 2); bf16 = true)
    @test err < 5e-2
    @test st.dtype == :bf16
end

@testset "errors carry the library's message" begin
    e = try
        Engine("""{"train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": "four"}}"""; log = quiet)
    catch err
        err
    end
    @test e isa DSZeroError
    @test e.status == L.DSZ_ERR_CONFIG
    @test occursin("zero_optimization.stage", e.message)
    @test occursin("zero_optimization.stage", sprint(showerror, e))

    @test_throws DSZeroError Engine("/nonexistent/ds_config.json"; log = quiet)

    fp16 = """{"train_micro_batch_size_per_gpu": 2, "fp16": {"enabled": true}, "optimizer": {"type": "AdamW"}}"""
    Engine(fp16; log = quiet) do eng
        e = try register_params!(eng, ["fc.weight" => zeros(Float32, 4, 4)]) catch err; err end
        @test e isa DSZeroError && e.status == L.DSZ_ERR_DTYPE
        @test occursin("parameter 'fc.weight' is float32", e.message)
        register_params!(eng, ["fc.weight" => zeros(Float16, 4, 4)])   # unchanged engine: still works
        @test param_index(eng, "fc.weight") == 1
        e = try grad_ready!(eng, 1, zeros(Float32, 4, 4)) catch err; err end
        @test e.status == L.DSZ_ERR_DTYPE
        e = try step!(eng) catch err; err end
        @test e.status == L.DSZ_ERR_STATE
    end
end

@testset "engine lifetime" begin
    eng = Engine(ADAM; log = quiet)
    @test isopen(eng)
    close(eng)
    close(eng)                          # idempotent, no double free
    @test !isopen(eng)
    @test_throws DSZeroError loss_scale(eng)
    for _ in 1:100                      # finalizers free the rest
        Engine(ADAM; log = quiet)
    end
    GC.gc()

    w = zeros(Float32, 8)
    eng = Engine(ADAM; log = quiet)
    register_params!(eng, ["w" => w])
    resize!(w, 16)                      # moves or grows the array dszero writes into
    backward!(eng)                      # no gradient: counts as zero
    @test_throws DSZeroError step!(eng)
    close(eng)
end

@testset "log callback" begin
    seen = Tuple{DSZero.LogLevel,String}[]
    Engine(ADAM; log = (l, m) -> push!(seen, (l, m))) do eng
        @test any(((l, m),) -> l == DSZero.LOG_INFO && occursin("dszero", m), seen)
    end
    eng = Engine(ADAM; log = (l, m) -> error("logger failure"))   # must not unwind into C
    @test eng.logger.error isa ErrorException
    close(eng)
end

@testset "checkpoint round trip" begin
    mktempdir() do dir
        a, b = fill(0.25f0, 3, 2), fill(-1f0, 3, 2)
        g(k) = Float32[cos(0.3f0 * (7k + i)) for i in 0:5]
        train!(eng, ks) = for k in ks
            grad_ready!(eng, 1, reshape(g(k), 3, 2)); backward!(eng); step!(eng)
        end
        src = Engine(ADAM; log = quiet)
        register_params!(src, ["layer.w" => a])
        train!(src, 0:4)
        save(src, dir; tag = "mid", client_state = """{"epoch": 3}""")
        @test isdir(joinpath(dir, "mid"))
        dst = Engine(ADAM; log = quiet)
        register_params!(dst, ["layer.w" => b])
        @test replace(load!(dst, dir), " " => "") == """{"epoch":3}"""
        @test a == b
        @test state(dst).global_steps == 5
        train!(src, 5:8); train!(dst, 5:8)
        @test reinterpret(UInt32, a) == reinterpret(UInt32, b)
        @test_throws DSZeroError load!(dst, dir; tag = "nope")
        close(src); close(dst)
    end
end

@testset "config_resolve" begin
    @test occursin("train_batch_size", config_resolve(ADAM; log = quiet))
end

end
