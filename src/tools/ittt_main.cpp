// ittt_main.cpp: the command-line tool. Subcommands live in src/tools/cmd_*.cpp.
#include <cstdio>
#include <string>

#include "runtime/device.h"
#include "runtime/error.h"

int main(int argc, char** argv) {
    using namespace ittt;
    try {
        std::string cmd = argc > 1 ? argv[1] : "--help";
        if (cmd == "--help" || cmd == "-h" || cmd == "help") {
            std::printf("usage: ittt <command> [options]\n\ncommands:\n  info   build and device information\n");
            return 0;
        }
        if (cmd == "info") {
            std::printf("cpu: %s\ncuda: %s\n", device::describe(Device::CPU).c_str(),
                        built_with_cuda() ? device::describe(Device::CUDA).c_str() : "not built");
            return 0;
        }
        fail(cat("unknown command '", cmd, "' (see ittt --help)"));
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
