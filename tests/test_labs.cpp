// The course labs (notebooks-cpp/): each built lab must pass its own checks with
// the reference solutions (`--check --solution`, exit code 0), and the shipped
// skeleton (`--check` on the TODO code, what `make labs-check` runs) must fail them:
// exit code 1 with at least one "[FAILED]" line, not a crash, so an exercise whose
// stub passes (nothing left to solve) or crashes is caught.
//
// Binaries come from $ITTT_LABS_DIR, else the BUILD's labs folder that the
// Makefile compiles in (build/labs); `make test` builds them first (notebooks-cpp/labs.mk).
// The expected labs are the folders notebooks-cpp/*/ with a lab.cpp (or lab.cu), so a lab
// that failed to build is a failure, not a silent skip. A lab's output goes to
// <labs dir>/<name>.check.log; its tail is printed when it fails.
#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;

#ifndef ITTT_LABS_DEFAULT_DIR
#define ITTT_LABS_DEFAULT_DIR "build/labs"
#endif

namespace {

std::string labs_dir() {
    const char* env = std::getenv("ITTT_LABS_DIR");
    return env && *env ? env : ITTT_LABS_DEFAULT_DIR;
}

// The last `lines` lines of a file.
std::string tail(const fs::path& path, int lines) {
    std::ifstream in(path);
    std::vector<std::string> all;
    for (std::string line; std::getline(in, line);) all.push_back(line);
    std::string out;
    for (size_t i = all.size() > static_cast<size_t>(lines) ? all.size() - static_cast<size_t>(lines) : 0; i < all.size(); ++i)
        out += all[i] + "\n";
    return out;
}

// The labs to run: the folders notebooks-cpp/*/ with a lab.cpp or lab.cu, and every binary in dir.
std::set<std::string> lab_names(const fs::path& dir) {
    std::set<std::string> names;
    if (fs::is_directory("notebooks-cpp"))  // run from the repository root, as `make test` does
        for (const auto& e : fs::directory_iterator("notebooks-cpp"))
            if (fs::exists(e.path() / "lab.cpp") || fs::exists(e.path() / "lab.cu")) names.insert(e.path().filename().string());
    if (fs::is_directory(dir))
        for (const auto& e : fs::directory_iterator(dir))
            if (e.is_regular_file() && e.path().extension().empty()) names.insert(e.path().filename().string());
    return names;
}

// Runs `bin flags`, output to log; the exit code, or -1 when it did not exit normally (a crash).
int run_lab(const fs::path& bin, const std::string& flags, const fs::path& log) {
    const std::string cmd = "\"" + bin.string() + "\" " + flags + " > \"" + log.string() + "\" 2>&1";
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool contains(const fs::path& path, const std::string& text) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);)
        if (line.find(text) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("every lab passes its checks with the reference solutions and fails them as shipped", "[labs]") {
    const fs::path dir = labs_dir();
    const std::set<std::string> names = lab_names(dir);
    INFO("labs directory: " << dir.string() << " (set ITTT_LABS_DIR, or run `make labs`)");
    REQUIRE(!names.empty());
    for (const std::string& name : names) {
        const fs::path bin = dir / name, log = dir / (name + ".check.log"), skeleton_log = dir / (name + ".skeleton.log");
        INFO("lab " << name);
        REQUIRE(fs::exists(bin));
        const int solution = run_lab(bin, "--check --solution", log);
        INFO("--check --solution: exit code " << solution << "; last lines of " << log.string() << ":\n" << tail(log, 15));
        CHECK(solution == 0);
        const int skeleton = run_lab(bin, "--check", skeleton_log);
        INFO("--check (the skeleton): exit code " << skeleton << "; last lines of " << skeleton_log.string() << ":\n"
                                                   << tail(skeleton_log, 15));
        CHECK(skeleton == 1);
        CHECK(contains(skeleton_log, "[FAILED]"));
    }
}
