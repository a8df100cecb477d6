// cli_util.h: running the built `ittt` binary from tests, as a user would.
//
// Builds on test_process.h (TempDir, repo_file, run_shell). The binary: $ITTT_BIN,
// else `ittt` beside this test binary, else build/ittt.
// Every child runs with OMP_NUM_THREADS=1: the models are tiny, and on a busy
// 2-core machine idle OpenMP threads only wait for each other.
//
//   TempDir tmp("ittt_test_cli");
//   Result r = run_ittt(tmp, "forward --ckpt " + repo_file("data/demo") + " --tokens 1,2");
//   check_usage_error(run_ittt(tmp, "forward --top 0 ..."), "forward", "--top must be in [1, ");
#pragma once
#include <string>
#include <vector>

#include "io/json.h"
#include "test_process.h"
#include "test_util.h"

namespace ittt::test {

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

// read_file under another name: tests that also include io/atomic_file.h have
// ittt::read_file too, and both namespaces are in use there.
inline std::string read_text(const std::string& path) { return read_file(path); }

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

// Runs `[env] ittt <args>` (shell words; the paths used here hold no spaces).
inline Result run_ittt(const TempDir& scratch, const std::string& args, const std::string& env = "") {
    INFO("the ittt binary: " << ittt_binary() << " (build it with `make build/ittt`, or point ITTT_BIN at one)");
    REQUIRE(is_executable(ittt_binary()));
    return run_shell(scratch, "OMP_NUM_THREADS=1 " + env + " '" + ittt_binary() + "' " + args);
}

// Runs `[env] ittt <args>` with its own redirection of stdout at the end of the
// line (`> /dev/full`, `>&-`, `| head -n 1 > /dev/null`); stderr is captured.
// For a pipe, the exit code is ittt's (written to a file inside the pipe), not
// the reader's.
inline Result run_ittt_redirected(const TempDir& scratch, const std::string& args, const std::string& redirect, const std::string& env = "") {
    REQUIRE(is_executable(ittt_binary()));
    const std::string err = scratch / ".redirected.err", rc_file = scratch / ".redirected.rc";
    const std::string ittt = "OMP_NUM_THREADS=1 " + env + " '" + ittt_binary() + "' " + args + " 2>'" + err + "'";
    const bool pipe = !redirect.empty() && redirect[0] == '|';
    std::remove(rc_file.c_str());
    const std::string line = pipe ? "(" + ittt + "; echo $? > '" + rc_file + "') " + redirect : ittt + " " + redirect;
    auto t0 = std::chrono::steady_clock::now();
    const int status = std::system(line.c_str());
    Result r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (pipe) r.rc = read_file(rc_file).empty() ? -1 : std::atoi(read_file(rc_file).c_str());
    else if (status != -1 && WIFEXITED(status)) r.rc = WEXITSTATUS(status);
    else if (status != -1 && WIFSIGNALED(status)) r.rc = 128 + WTERMSIG(status);
    r.err = read_file(err);
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
