// test_main.cpp: the Catch2 runner. Ends with one line "N passed, M failed[, K skipped]"
// counting test cases, which `make test` and .ci/run report.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "runtime/device.h"
#include "test_util.h"

namespace ittt::test {
int skipped_in_current_case = 0;
int skipped_mpi_in_current_case = 0;
}

namespace {
int cases_passed = 0, cases_failed = 0, cases_skipped = 0, cases_skipped_mpi = 0;

struct CaseCounter : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;
    void testCaseStarting(const Catch::TestCaseInfo&) override {
        ittt::test::skipped_in_current_case = 0;
        ittt::test::skipped_mpi_in_current_case = 0;
    }
    void testCaseEnded(const Catch::TestCaseStats& stats) override {
        if (stats.totals.assertions.failed > 0) ++cases_failed;
        else if (ittt::test::skipped_in_current_case > 0) ++cases_skipped;
        else if (ittt::test::skipped_mpi_in_current_case > 0) ++cases_skipped_mpi;
        else ++cases_passed;
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
    std::printf("%d passed, %d failed", cases_passed, cases_failed);
    if (cases_skipped + cases_skipped_mpi > 0) std::printf(", %d skipped", cases_skipped + cases_skipped_mpi);
    std::printf("\n");
    return (rc != 0 || cases_failed > 0) ? 1 : 0;
}
