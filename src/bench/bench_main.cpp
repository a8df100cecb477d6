// bench_main.cpp: runs every registered benchmark in order.
//   build/ittt_bench [--quick | --tiny] [--filter NAME[,NAME...]] [--csv FILE] [--threads N]
//   build/ittt_bench --save-model DIR [--chunk C] [--no-ttt]   the bench model as a checkpoint
//   build/ittt_bench --serve DIR [--threads N]                 timing server (bench_serve.cpp)
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "bench/bench.h"
#include "bench/bench_models.h"
#include "model/model_io.h"
#include "runtime/device.h"
#include "runtime/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ittt::bench {

namespace {
struct Entry {
    std::string name;
    int order;
    BenchFn fn;
};
std::vector<Entry>& registry() {
    static std::vector<Entry> r;
    return r;
}
}  // namespace

Registrar::Registrar(const char* name, int order, BenchFn fn) { registry().push_back({name, order, fn}); }

// Whether --filter selects the benchmark `name`: no filter, or one of its comma-separated
// parts is a substring of the name ("gemm_cuda,ttt_cuda").
bool selected(const std::string& filter, const std::string& name) {
    if (filter.empty()) return true;
    size_t start = 0;
    while (start <= filter.size()) {
        const size_t comma = std::min(filter.find(',', start), filter.size());
        const std::string part = filter.substr(start, comma - start);
        if (!part.empty() && name.find(part) != std::string::npos) return true;
        start = comma + 1;
    }
    return false;
}

}  // namespace ittt::bench

int main(int argc, char** argv) {
    using namespace ittt;
    bench::Context ctx;
    {
        // The PyTorch comparator records its results beside this binary (build/torch_compare.txt).
        std::string self = argv[0];
        size_t slash = self.find_last_of('/');
        ctx.torch_record = (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/torch_compare.txt";
    }
    try {
        std::string serve_dir, save_dir;
        int chunk = 64;
        bool ttt = true;
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a == "--quick") ctx.quick = true;
            else if (a == "--tiny") ctx.tiny = true;
            else if (a == "--filter" && i + 1 < argc) ctx.filter = argv[++i];
            else if (a == "--csv" && i + 1 < argc) ctx.csv = argv[++i];
            else if (a == "--serve" && i + 1 < argc) serve_dir = argv[++i];
            else if (a == "--save-model" && i + 1 < argc) save_dir = argv[++i];
            else if (a == "--chunk" && i + 1 < argc) chunk = std::stoi(argv[++i]);
            else if (a == "--no-ttt") ttt = false;
#ifdef _OPENMP
            else if (a == "--threads" && i + 1 < argc) omp_set_num_threads(std::stoi(argv[++i]));
#endif
            else if (a == "--help" || a == "-h") {
                std::printf("usage: ittt_bench [--quick | --tiny] [--filter NAME[,NAME...]] [--csv FILE] [--threads N]\n"
                            "       (--tiny: toy shapes, a check of the benchmarks' code and CSV; the GPU benchmarks'\n"
                            "        only mode on the CUDA emulator. --csv: the GPU benchmarks' rows, appended)\n"
                            "       ittt_bench --save-model DIR [--chunk C] [--no-ttt]\n"
                            "       ittt_bench --serve DIR [--threads N]\n");
                return 0;
            } else fail(cat("ittt_bench: unknown argument '", a, "'"));
        }
        if (!save_dir.empty()) {
            save_model(save_dir, bench::bench_model(ttt, chunk));
            std::printf("wrote %s (bench model, %s)\n", save_dir.c_str(), ttt ? cat("TTT, chunk ", chunk).c_str() : "no TTT");
            return 0;
        }
        if (!serve_dir.empty()) return bench::serve(serve_dir);
        auto& reg = bench::registry();
        std::stable_sort(reg.begin(), reg.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
        std::printf("ittt_bench on %s%s\n", device::describe(Device::CPU).c_str(),
                    cuda_available() ? (", " + device::describe(Device::CUDA)).c_str() : "");
        std::printf("load average before (1, 5, 15 min): %s\n", bench::load_average().c_str());
        std::string names;
        int ran = 0;
        for (const auto& e : reg) {
            names += (names.empty() ? "" : ", ") + e.name;
            if (!bench::selected(ctx.filter, e.name)) continue;
            e.fn(ctx);
            ++ran;
        }
        ITTT_CHECK(ran > 0, "ittt_bench: --filter '", ctx.filter, "' matches no benchmark (they are: ", names, ")");
        std::printf("\nload average after (1, 5, 15 min): %s\n", bench::load_average().c_str());
        if (bench::failed_count() > 0) {
            std::fprintf(stderr, "ittt_bench: %d benchmark rows failed (the 'failed:' lines above)\n", bench::failed_count());
            return 1;
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
