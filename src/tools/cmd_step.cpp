// cmd_step.cpp: ittt step (the step-through driver). Wired to src/driver/ in a later commit.
#include <cstdio>

#include "tools/args.h"
#include "tools/commands.h"

namespace ittt {
int cmd_step(int argc, char** argv) {
    Args a("step", "usage: ittt step --theory | --ckpt DIR [options]\n", argc, argv, 2);
    if (a.help()) return std::printf("%s", a.usage().c_str()), 0;
    a.error("the step-through driver is not built yet (issue 4)");
}
}  // namespace ittt
