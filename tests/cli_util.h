// cli_util.h: running the built `ittt` binary from tests, as a user would.
//
// The binary: $ITTT_BIN, else `ittt` beside this test binary, else build/ittt.
// Every child runs with OMP_NUM_THREADS=1: the models are tiny, and on a busy
// 2-core machine idle OpenMP threads only wait for each other.
//
//   TempDir tmp;
//   Result r = run_ittt(tmp, "forward --ckpt " + repo_file("data/demo") + " --tokens 1,2");
//   check_usage_error(run_ittt(tmp, "forward --top 0 ..."), "forward", "--top must be in [1, ");
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "io/json.h"
#include "test_util.h"

namespace ittt::test {

inline std::string self_dir() {
    std::error_code ec;
    std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string(".") : exe.parent_path().string();
}

inline bool is_executable(const std::string& path) {
    return ::access(path.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(path);
}

inline const std::string& ittt_binary() {
    static const std::string bin = [] {
        if (const char* env = std::getenv("ITTT_BIN")) return std::filesystem::absolute(env).string();
        std::string beside = self_dir() + "/ittt";
        if (is_executable(beside)) return beside;
        return std::filesystem::absolute("build/ittt").string();
    }();
    return bin;
}

// A file of the repository (data/configs/...), from the working directory or the binary's.
inline std::string repo_file(const std::string& rel) {
    if (std::filesystem::exists(rel)) return std::filesystem::absolute(rel).string();
    return std::filesystem::absolute(std::filesystem::path(self_dir()) / ".." / rel).lexically_normal().string();
}

inline std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_text(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
}

inline std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::stringstream ss(text);
    for (std::string l; std::getline(ss, l);) lines.push_back(l);
    return lines;
}

// A fresh directory under /tmp, removed with everything in it at scope exit.
struct TempDir {
    std::string path;
    explicit TempDir(const char* tag = "cli") {
        std::string tmpl = std::string("/tmp/ittt_test_") + tag + "_XXXXXX";
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

struct Result {
    int rc = -1;  // exit code; 128 + signal when the child was killed
    std::string out, err;
    std::vector<std::string> err_lines() const { return lines_of(err); }
};

// Runs `[env] ittt <args>` (shell words; the paths used here hold no spaces).
inline Result run_ittt(const TempDir& scratch, const std::string& args, const std::string& env = "") {
    INFO("the ittt binary: " << ittt_binary() << " (build it with `make build/ittt`, or point ITTT_BIN at one)");
    REQUIRE(is_executable(ittt_binary()));
    const std::string out = scratch / ".stdout", err = scratch / ".stderr";
    std::string cmd = "OMP_NUM_THREADS=1 " + env + " '" + ittt_binary() + "' " + args + " >'" + out + "' 2>'" + err + "'";
    int status = std::system(cmd.c_str());
    Result r;
    if (status != -1 && WIFEXITED(status)) r.rc = WEXITSTATUS(status);
    else if (status != -1 && WIFSIGNALED(status)) r.rc = 128 + WTERMSIG(status);
    r.out = read_text(out);
    r.err = read_text(err);
    return r;
}

// A usage error: exit 2, "ittt <cmd>: <message>" alone on the first line, then a blank line and the usage.
inline void check_usage_error(const Result& r, const std::string& cmd, const std::string& message) {
    INFO("stderr:\n" << r.err << "stdout:\n" << r.out);
    CHECK(r.rc == 2);
    std::vector<std::string> lines = r.err_lines();
    REQUIRE(lines.size() >= 3);
    CHECK_THAT(lines[0], Catch::StartsWith("ittt " + cmd + ": ") && Catch::Contains(message));
    CHECK(lines[1].empty());
    CHECK_THAT(r.err, Catch::Contains("usage: ittt " + cmd));
    CHECK(r.out.empty());
}

// A run-time error: exit 1 and one line "ittt <cmd>: error: ..." naming what failed
// (after any notes: lines "ittt <cmd>: ..." without "error:").
inline void check_runtime_error(const Result& r, const std::string& cmd, const std::vector<std::string>& mentions) {
    INFO("stderr:\n" << r.err << "stdout:\n" << r.out);
    CHECK(r.rc == 1);
    std::vector<std::string> lines = r.err_lines();
    REQUIRE(!lines.empty());
    CHECK_THAT(lines.back(), Catch::StartsWith("ittt " + cmd + ": error: "));
    for (size_t i = 0; i + 1 < lines.size(); ++i) CHECK_THAT(lines[i], Catch::StartsWith("ittt " + cmd + ": ") && !Catch::Contains("error:"));
    for (const std::string& m : mentions) CHECK_THAT(lines.back(), Catch::Contains(m));
}

inline Json parse_json(const std::string& text, const std::string& what) {
    INFO(what << " printed:\n" << text);
    Json j;
    REQUIRE_NOTHROW(j = Json::parse(text, what));
    return j;
}

}  // namespace ittt::test
