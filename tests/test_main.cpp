// test_main.cpp: the Catch2 runner. Ends with one line "N passed, M failed[, K skipped]"
// counting test cases, which `make test` and .ci/run report. Before it, a line says how
// many [cuda] cases ran on a real GPU and how many on the CUDA emulator (make CUDA=emu),
// so that an emulated run is never mistaken for a GPU one.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>

#include "runtime/device.h"
#include "test_util.h"

namespace ittt::test {
int skipped_in_current_case = 0;
int skipped_mpi_in_current_case = 0;
std::map<std::string, int> versions_skipped;
}

namespace {
int cases_passed = 0, cases_failed = 0, cases_skipped = 0, cases_skipped_mpi = 0;
int cuda_cases_ran = 0;  // [cuda] cases that ran (not skipped), on whatever the CUDA device is
bool current_case_is_cuda = false;

struct CaseCounter : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;
    void testCaseStarting(const Catch::TestCaseInfo& info) override {
        ittt::test::skipped_in_current_case = 0;
        ittt::test::skipped_mpi_in_current_case = 0;
        current_case_is_cuda = std::find(info.tags.begin(), info.tags.end(), "cuda") != info.tags.end();
    }
    void testCaseEnded(const Catch::TestCaseStats& stats) override {
        if (stats.totals.assertions.failed > 0) ++cases_failed;
        else if (ittt::test::skipped_in_current_case > 0) ++cases_skipped;
        else if (ittt::test::skipped_mpi_in_current_case > 0) ++cases_skipped_mpi;
        else ++cases_passed;
        if (current_case_is_cuda && ittt::test::skipped_in_current_case == 0) ++cuda_cases_ran;
    }
};
}  // namespace
CATCH_REGISTER_LISTENER(CaseCounter)

int main(int argc, char** argv) {
    Catch::Session session;
    int rc = session.applyCommandLine(argc, argv);
    if (rc != 0) return rc;
    rc = session.run();
    if (session.configData().listTests || session.configData().listTags) return rc;
    if (cases_skipped > 0)
        std::printf("skipped %d test cases tagged [cuda]: %s\n", cases_skipped,
                    ittt::built_with_cuda() ? "no CUDA device present" : "built without CUDA");
    if (cases_skipped_mpi > 0)
        std::printf("skipped %d test cases tagged [mpi]: built without MPI (MPI=1; needs libopenmpi-dev openmpi-bin)\n", cases_skipped_mpi);
    // Kernel versions that need more than this CPU has (AVX-512 rows on an AVX2 machine).
    for (const auto& [version, runs] : ittt::test::versions_skipped)
        std::printf("skipped %d runs of %s: this CPU runs %s\n", runs, version.c_str(), ittt::describe_cpu_isa().c_str());
    const bool emulated = ittt::cuda_emulated();
    std::printf("[cuda] cases run: %d on the CUDA emulator (CPU), %d on a GPU\n", emulated ? cuda_cases_ran : 0,
                emulated ? 0 : cuda_cases_ran);
    std::printf("%d passed, %d failed", cases_passed, cases_failed);
    if (cases_skipped + cases_skipped_mpi > 0) std::printf(", %d skipped", cases_skipped + cases_skipped_mpi);
    std::printf("\n");
    return (rc != 0 || cases_failed > 0) ? 1 : 0;
}
