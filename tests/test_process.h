// test_process.h: running programs from the tests (tests/test_cli.cpp, test_parallel.cpp):
// a scratch directory, files of the repository and beside the test binary, and a shell
// command run with its exit code, stdout and stderr captured.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace ittt::test {

// The folder of this test binary (build/).
inline std::string self_dir() {
    std::error_code ec;
    std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string(".") : exe.parent_path().string();
}

// A file of the repository (data/configs/...), from the working directory or the binary's.
inline std::string repo_file(const std::string& rel) {
    if (std::filesystem::exists(rel)) return std::filesystem::absolute(rel).string();
    return std::filesystem::absolute(std::filesystem::path(self_dir()) / ".." / rel).lexically_normal().string();
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A fresh directory under /tmp, removed with everything in it at scope exit.
struct TempDir {
    std::string path;
    explicit TempDir(const std::string& tag = "ittt_test") {
        std::string tmpl = "/tmp/" + tag + "_XXXXXX";
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

struct Result {
    int rc = -1;  // exit code; 128 + signal when the child was killed
    std::string out, err;
    double seconds = 0;
    std::vector<std::string> err_lines() const {
        std::vector<std::string> lines;
        std::stringstream ss(err);
        for (std::string l; std::getline(ss, l);) lines.push_back(l);
        return lines;
    }
};

// Runs a shell command line (its words must need no quoting beyond what the caller
// gives them), its stdout and stderr going to files in `scratch`.
inline Result run_shell(const TempDir& scratch, const std::string& command) {
    const std::string out = scratch / ".stdout", err = scratch / ".stderr";
    const std::string line = command + " >'" + out + "' 2>'" + err + "'";
    auto t0 = std::chrono::steady_clock::now();
    int status = std::system(line.c_str());
    Result r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (status != -1 && WIFEXITED(status)) r.rc = WEXITSTATUS(status);
    else if (status != -1 && WIFSIGNALED(status)) r.rc = 128 + WTERMSIG(status);
    r.out = read_file(out);
    r.err = read_file(err);
    return r;
}

}  // namespace ittt::test
