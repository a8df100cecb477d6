// ittt_main.cpp: the command-line tool. Subcommands live in src/tools/cmd_*.cpp.
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

#include "io/fault_injection.h"
#include "ops/op_table.h"
#include "parallel/context.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace {
const char* kUsage =
    "usage: ittt <command> [options]      (ittt <command> --help for its options)\n"
    "\n"
    "commands:\n"
    "  init       a seeded, randomly initialised checkpoint from a config.json\n"
    "  convert    add or strip TTT layers, change dtype or sharding (Hugging Face checkpoints too)\n"
    "  train      train on a toy task (induction, mqar, theorem, needle, text)\n"
    "  eval       accuracy and loss of a checkpoint on held-out seeded batches\n"
    "  forward    logits at every position of a token sequence\n"
    "  generate   streaming decode with the KV cache and TTT fast weights\n"
    "  step       step through a sequence chunk by chunk; check the induction-head theorem\n"
    "  info       build and device information; --kernels: every op's kernel versions per device\n"
    "             (--cuda-kernels OP=V: the CUDA kernels that version runs, as a regex for Nsight Compute)\n";
}

int main(int argc, char** argv) {
    using namespace ittt;
    if (argc < 2) {  // no command is a usage error, not a request for help
        std::fprintf(stderr, "ittt: missing command\n\n%s", kUsage);
        return 2;
    }
    std::string cmd = argv[1];
    try {
        fault::load_environment();  // a malformed ITTT_FAULT (tests only) is refused up front
        if (cmd == "--help" || cmd == "-h" || cmd == "help") return std::printf("%s", kUsage), 0;
        if (cmd == "info") {
            // `ittt info --kernels`: every op's versions per device, from the op table.
            // `ittt info --cuda-kernels gemm=3`: the CUDA kernels version 3 runs, as a regex (make profile's ncu -k).
            const char* info_usage = "usage: ittt info [--kernels | --cuda-kernels OP=VERSION]\n";
            if (argc == 3 && std::strcmp(argv[2], "--kernels") == 0) return std::printf("%s", ops::describe_op_table().c_str()), 0;
            if (argc == 4 && std::strcmp(argv[2], "--cuda-kernels") == 0) {
                ops::set_versions_from_string(argv[3]);
                const std::string spec = argv[3], op = spec.substr(0, spec.find('='));
                const int v = ops::version(op);
                const ops::DeviceVersions& cuda = ops::op_spec(op).cuda;
                const ops::VersionInfo* info = cuda.find(v == 0 ? cuda.best : v);
                ITTT_CHECK(info != nullptr, "info: ", op, " has no CUDA version ", v, " (CUDA versions: ", cuda.describe(), ")");
                return std::printf("%s\n", info->kernels), 0;
            }
            if (argc > 2) throw UsageError{cat("info: unknown option '", argv[2], "'"), info_usage};
            std::printf("cpu: %s\ncuda: %s\n", device::describe(Device::CPU).c_str(),
                        built_with_cuda() ? device::describe(Device::CUDA).c_str() : "not built");
            return 0;
        }
        if (cmd == "init") return cmd_init(argc, argv);
        if (cmd == "convert") return cmd_convert(argc, argv);
        if (cmd == "train") return parallel::finish_job(cmd_train(argc, argv));  // --context-parallel
        if (cmd == "eval") return parallel::finish_job(cmd_eval(argc, argv));  // --context-parallel
        if (cmd == "forward") return parallel::finish_job(cmd_forward(argc, argv));  // --context-parallel
        if (cmd == "generate") return cmd_generate(argc, argv);
        if (cmd == "step") return cmd_step(argc, argv);
        std::fprintf(stderr, "ittt: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
        return 2;
    } catch (const UsageError& e) {
        std::fprintf(stderr, "%s\n\n%s", e.message.c_str(), e.usage.c_str());
        parallel::abort_job_after_error(2);
        return 2;
    } catch (const Error& e) {
        std::fprintf(stderr, "ittt %s: error: %s\n", cmd.c_str(), e.what());
        parallel::abort_job_after_error(1);  // under mpirun: stop the other ranks too
        return 1;
    } catch (const std::bad_alloc&) {
        // The size checks (model/memory_budget.h) should have refused this first.
        std::fprintf(stderr, "ittt %s: error: out of memory (std::bad_alloc): the request is larger than this machine can hold\n",
                     cmd.c_str());
        parallel::abort_job_after_error(1);
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ittt %s: unexpected error: %s\n", cmd.c_str(), e.what());
        parallel::abort_job_after_error(1);
        return 1;
    }
}
