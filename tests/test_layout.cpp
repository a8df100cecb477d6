// Tests of the code's layering (tests/check_layers.sh, docs/architecture.md): every
// #include in src/, kernels/ and the labs goes to the same folder or a lower layer,
// kernels are reached only through ops, and no folders include each other in a cycle.
// The second case shows the check can fail: a tiny tree with planted violations.
#include <filesystem>
#include <fstream>
#include <string>

#include "test_process.h"

using namespace ittt::test;
using Catch::Contains;

namespace {

Result check_layers(const TempDir& scratch, const std::string& root = "") {
    return run_shell(scratch, "'" + repo_file("tests/check_layers.sh") + "'" + (root.empty() ? "" : " '" + root + "'"));
}

void write(const std::string& path, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
}

}  // namespace

TEST_CASE("every #include in src/, kernels/ and the labs keeps to the layer order (tests/check_layers.sh)", "[layout]") {
    TempDir scratch("ittt_layout");
    Result r = check_layers(scratch);
    INFO(r.out << r.err);
    CHECK(r.rc == 0);
    CHECK_THAT(r.out, Contains("every one keeps to the layers") && Contains("no cycles"));
}

TEST_CASE("the layer check fails on planted violations, naming the file, the include and the rule", "[layout]") {
    TempDir tree("ittt_layout_tree"), scratch("ittt_layout");
    // A tree that keeps to the order: runtime < kernels < ops < io < model, labs on top.
    write(tree / "src/runtime/tensor.h", "#pragma once\n");
    write(tree / "kernels/gemm/gemm.h", "#pragma once\n#include \"runtime/tensor.h\"\n");
    write(tree / "src/ops/ops.h", "#pragma once\n#include \"kernels/gemm/gemm.h\"\n");
    write(tree / "src/io/json.h", "#pragma once\n#include \"runtime/tensor.h\"\n#include <vector>\n");
    write(tree / "src/model/model.h", "#pragma once\n#include \"io/json.h\"\n#include \"ops/ops.h\"\n");
    write(tree / "notebooks-cpp/lab_util.h", "#pragma once\n");
    write(tree / "notebooks-cpp/01-lab/lab.cpp", "#include \"../lab_util.h\"\n#include \"model/model.h\"\n");
    {
        Result r = check_layers(scratch, tree.path);
        INFO(r.out << r.err);
        REQUIRE(r.rc == 0);
    }

    SECTION("an include of a layer above") {
        write(tree / "src/io/checkpoint.h", "#pragma once\n#include \"model/model.h\"\n");
        Result r = check_layers(scratch, tree.path);
        INFO(r.out << r.err);
        CHECK(r.rc == 1);
        CHECK_THAT(r.out, Contains("src/io/checkpoint.h:2: #include \"model/model.h\": io may not include model, a layer above it"));
        // io -> model -> io
        CHECK_THAT(r.out, Contains("cycle between folders: io -> model -> io (includes at src/io/checkpoint.h:2, src/model/model.h:2)"));
    }
    SECTION("two folders side by side on one layer") {
        write(tree / "src/tasks/tasks.h", "#pragma once\n#include \"tokenizer/tokenizer.h\"\n");
        write(tree / "src/tokenizer/tokenizer.h", "#pragma once\n");
        Result r = check_layers(scratch, tree.path);
        INFO(r.out << r.err);
        CHECK(r.rc == 1);
        CHECK_THAT(r.out, Contains("src/tasks/tasks.h:2: #include \"tokenizer/tokenizer.h\": tasks and tokenizer are side by side"));
    }
    SECTION("a kernel included from outside ops") {
        write(tree / "src/model/ring.cpp", "#include \"kernels/gemm/gemm.h\"\n");
        Result r = check_layers(scratch, tree.path);
        INFO(r.out << r.err);
        CHECK(r.rc == 1);
        CHECK_THAT(r.out, Contains("src/model/ring.cpp:1: #include \"kernels/gemm/gemm.h\": model may not include kernels directly, only ops, bench may"));
    }
    SECTION("a lab including an application's code") {
        write(tree / "src/tools/args.h", "#pragma once\n");
        write(tree / "notebooks-cpp/02-lab/lab.cpp", "#include \"tools/args.h\"\n");
        Result r = check_layers(scratch, tree.path);
        INFO(r.out << r.err);
        CHECK(r.rc == 1);
        CHECK_THAT(r.out, Contains("notebooks-cpp/02-lab/lab.cpp:1: #include \"tools/args.h\": labs and tools are side by side"));
    }
    SECTION("a folder with no place in the order") {
        write(tree / "src/extras/extra.h", "#pragma once\n#include \"runtime/tensor.h\"\n");
        Result r = check_layers(scratch, tree.path);
        INFO(r.out << r.err);
        CHECK(r.rc == 1);
        CHECK_THAT(r.out, Contains("folder \"extras\" has no place in LAYERS"));
    }
}
