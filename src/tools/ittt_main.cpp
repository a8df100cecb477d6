// ittt_main.cpp: the command-line tool. Subcommands live in src/tools/cmd_*.cpp.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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
// The longest error line printed: a message quoting a huge input is cut, with
// its size (each quote of input is cut at 300 bytes already; this is the net).
constexpr size_t kMaxMessage = 4000;

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

// The command itself; main() adds the checks of the standard streams around it.
int run_command(int argc, char** argv) {
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
        std::fprintf(stderr, "%s\n\n%s", excerpt(e.message, kMaxMessage).c_str(), e.usage.c_str());
        parallel::abort_job_after_error(2);
        return 2;
    } catch (const Error& e) {
        std::fprintf(stderr, "ittt %s: error: %s\n", cmd.c_str(), excerpt(e.what(), kMaxMessage).c_str());
        parallel::abort_job_after_error(1);  // under mpirun: stop the other ranks too
        return 1;
    } catch (const std::bad_alloc&) {
        // The size checks (model/memory_budget.h) should have refused this first.
        std::fprintf(stderr, "ittt %s: error: out of memory (std::bad_alloc): the request is larger than this machine can hold\n",
                     cmd.c_str());
        parallel::abort_job_after_error(1);
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ittt %s: unexpected error: %s\n", cmd.c_str(), excerpt(e.what(), kMaxMessage).c_str());
        parallel::abort_job_after_error(1);
        return 1;
    }
}

namespace {

bool g_stdout_was_closed = false;

// A standard stream that was closed when ittt started (`ittt eval >&-`) gets
// /dev/null opened read-only in its place: writes to it fail (and are reported
// at exit), and no file ittt opens (a checkpoint being written) can take its
// number and receive the output meant for it.
void guard_standard_streams() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        if (fd == 1) g_stdout_was_closed = true;
        const int null = ::open("/dev/null", O_RDONLY);
        if (null >= 0 && null != fd) {
            ::dup2(null, fd);
            ::close(null);
        }
    }
}

// Output failures are errors: every byte written to stdout is flushed and
// checked here (a full disk, a closed stdout); a command that otherwise
// succeeded then exits 1 with one line naming the failure. A failed write to
// stderr cannot be reported anywhere, but still makes the exit code 1.
int finish_output(const char* cmd, int rc) {
    errno = 0;
    const bool out_failed = std::fflush(stdout) != 0 || std::ferror(stdout);
    const int out_errno = errno;
    if (out_failed && rc == 0) {
        const std::string who = cmd[0] == '\0' || cmd[0] == '-' || std::string(cmd) == "help" ? "ittt" : std::string("ittt ") + cmd;
        std::fprintf(stderr, "%s: error: cannot write to stdout: %s; the output is incomplete\n", who.c_str(),
                     g_stdout_was_closed ? "it is closed" : std::strerror(out_errno != 0 ? out_errno : EIO));
        rc = 1;
    }
    std::fflush(stderr);
    if (std::ferror(stderr) && rc == 0) rc = 1;
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    guard_standard_streams();
    const int rc = run_command(argc, argv);
    return finish_output(argc >= 2 ? argv[1] : "", rc);
}
