// commands.h: the `ittt` subcommands. Each takes main's argc/argv (argv[1] is
// the subcommand) and returns the exit code; usage errors are thrown as UsageError.
#pragma once

namespace ittt {
int cmd_init(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_forward(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_step(int argc, char** argv);
int cmd_convert(int argc, char** argv);
}  // namespace ittt
