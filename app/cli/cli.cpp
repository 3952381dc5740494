// The kvscope command line: one table of commands and their options. The table builds each
// command's QCommandLineParser and every help text, so help cannot drift from what is accepted.
#include "cli/cli.h"

#include <QCommandLineParser>
#include <QStringList>
#include <algorithm>
#include <cstdio>
#include <functional>
#include <new>
#include <optional>

#include "core/error.h"
#include "export/figure_run.h"

namespace kvscope::app {
namespace {

struct Option {
    const char* name;
    const char* value;  // the value's name in help ("N", "PATH"); nullptr for a flag
    std::string help;
    bool required = false;
    bool repeatable = false;
};

struct Command {
    const char* name;
    const char* summary;
    std::vector<Option> options;
    std::function<int(const CliArgs&)> run;
    const char* note = nullptr;  // a line of usage that options cannot say ("one of ...")
};

const Option kModel{"model", "PATH", "a GGUF model file (default: the built-in model)"};
const Option kNoSpecial{"no-special", nullptr,
                        "read special-token text in the prompt (<|begin_of_text|>, <s>) as plain "
                        "text; by default it is that one token, as llama.cpp parses it"};
const Option kContext{"context", "N",
                      "tokens of context to run with (default: the model's, at most 4,096); the "
                      "KV cache grows in blocks up to it"};
const Option kKvType{"kv-type", "f32|f16|q8_0|q4_0",
                     "the KV cache's element type (default f32; f16 halves it, q8_0 and q4_0 are "
                     "llama.cpp's blocks of 32: 34 and 18 bytes; CPU backend)"};
// The cache lab's policy (CPU backend).
const Option kWindow{"window", "W",
                     "cache policy: keep only the last W tokens' K/V (a query sees W, itself "
                     "included)"};
const Option kSinks{"sinks", "S", "cache policy: also keep the first S tokens (with --window)"};
const Option kHeavy{"heavy", "H",
                    "cache policy: also keep the H tokens with the most attention so far (heavy "
                    "hitters, with --window)"};
const Option kBlock{"block", "N", "the KV cache's block size in tokens (default 256)"};
const Option kColormap{"colormap", "LIST",
                       "colour maps: viridis (default) or cividis for weights, rdbu (default), "
                       "puor or blue-yellow (greyscale print) for signed values; e.g. "
                       "cividis,puor"};
const Option kJson{"json", nullptr, "print JSON instead of text"};
const Option kBackend{"backend", "auto|cpu|opencl",
                      "where the model runs (default auto: the first usable GPU, else the CPU)"};
const Option kDevice{"device", "N",
                     "the OpenCL device of `kvscope devices` (with --backend opencl)"};

const std::vector<Command>& commands() {
    static const std::vector<Command> table = {
        {"info",
         "the model's shape, parameters, weights and KV bytes per token",
         {kModel, kContext, kJson},
         runInfo},
        {"devices",
         "every OpenCL platform and device, and whether KVScope can use it",
         {kJson},
         runDevices},
        {"decode",
         "decode a prompt token by token and print the tokens (or the JSON contract)",
         {kModel,
          {"prompt", "TEXT", "the prompt (any text, even one that starts with '-')", true},
          {"steps", "N", "tokens to generate (default 16)"},
          kContext,
          kKvType,
          kWindow,
          kSinks,
          kHeavy,
          kBlock,
          kBackend,
          kDevice,
          {"fork", "N",
           "after the steps, fork: two continuations of N tokens on the same cache blocks (the "
           "second samples with the next seed), with their block tables (CPU backend)"},
          {"no-cache", nullptr, "recompute mode: no KV cache, every step runs every token"},
          kNoSpecial,
          {"temperature", "T", "0 (default) is greedy; above 0 samples"},
          {"top-k", "K", "sample among the K most likely tokens"},
          {"top-p", "P", "sample among the most likely tokens that make up probability P"},
          {"seed", "S", "the sampler's seed"},
          {"speculative", "lookup|model:PATH",
           "speculative decoding: drafts from earlier text (lookup) or from a draft model that "
           "shares the vocabulary, checked by the model in one batched pass; the rejected "
           "drafts' K/V leave the cache (greedy: the same tokens as plain decoding)"},
          {"draft", "N", "tokens drafted per round of --speculative (1..64, default 4)"},
          {"top-logits", "K", "how many (id, logit) pairs each step's JSON keeps (default 10)"},
          {"json", "FILE|-", "write the run as JSON (ARCHITECTURE.md) to FILE or stdout"}},
         runDecode},
        {"memory",
         "the KV-cache calculator: bytes per token, totals, GPU share, estimates",
         {{"preset", "NAME", "a real model's shape (--list shows them)"},
          kModel,
          {"list", nullptr, "list the presets"},
          {"dtype", "fp32|fp16|bf16|fp8|int8|int4", "the cache's element type (default fp16)"},
          {"weight-dtype", "T", "the weights' element type"},
          {"context", "N", "tokens of context"},
          {"batch", "B", "sequences at once"},
          {"window", "W", "a sliding window of W tokens"},
          {"gpu", "NAME", "a GPU from the datasheet list"},
          {"price", "USD_PER_GPU_HOUR", "for the cost estimate"},
          kJson},
         runMemory,
         "one of --preset, --model or --list"},
        {"export",
         "the views as PNG, SVG or PDF figures for lecture notes (no display needed)",
         {kModel,
          {"prompt", "TEXT", "the prompt (required unless --session gives it)"},
          {"out", "DIR", "the folder the figures go to", true},
          {"steps", "N", "tokens to generate (default 8)"},
          {"views", "LIST",
           "all (default), or some of " +
               (viz::exportableViewNames() << "trace").join(",").toStdString()},
          {"layer", "L", "the layer the views show"},
          {"head", "H", "the head the views show"},
          {"format", "png|svg|pdf", "the file type (default png)"},
          {"scale", "1..4", "PNG pixels per point (default 1)"},
          {"theme", "light|dark", "light print theme (default) or dark"},
          kColormap,
          {"size", "WxH", "the figure's size in points (default 1200x800)"},
          {"frames", nullptr, "a figure per step (PDF: a page per step)"},
          {"session", "FILE",
           "a saved session (.kvscope): its model, prompt, steps, sampling, cache policy, view, "
           "layer and head; options given beside it override them"},
          {"scene", "N", "with --session: its scene N (from 1): that step, view and caption"},
          {"temperature", "T", "0 (default) is greedy; above 0 samples"},
          {"top-k", "K", "sample among the K most likely tokens"},
          {"top-p", "P", "sample among the most likely tokens that make up probability P"},
          {"seed", "S", "the sampler's seed"},
          {"region", "R0:R1,C0:C1",
           "the attention figure zoomed to query rows R0..R1 and key columns C0..C1 (inclusive, "
           "from 0; e.g. 100:163,0:63)"},
          kNoSpecial,
          kContext,
          kKvType,
          kWindow,
          kSinks,
          kHeavy,
          kBlock,
          kBackend,
          kDevice},
         runExport},
        {"heads",
         "what every attention head looks at: previous token, first token, itself, copies",
         {kModel,
          {"prompt", "TEXT", "the prompt"},
          {"random-repeat", "N",
           "instead of a prompt, the standard induction test: N (at least 2) random tokens "
           "repeated twice (after BOS if the model's prompts start with it); induction is then "
           "measured on the second copy's rows, at the token after each one's earlier copy"},
          {"seed", "S", "the random tokens' seed (default 1337)"},
          kBackend,
          kDevice,
          kJson},
         runHeads,
         "one of --prompt or --random-repeat"},
        {"eval",
         "cross-entropy of the model on a text, in bits per byte (under a cache policy: also "
         "its KV bytes and agreement with the full cache)",
         {kModel,
          {"text", "FILE", "the text", true},
          kContext,
          kKvType,
          kWindow,
          kSinks,
          kHeavy,
          kBlock,
          kBackend,
          kDevice,
          {"json", "FILE|-", "also write the figures as JSON to FILE or stdout"}},
         runEval},
        {"train",
         "learn a BPE vocabulary and train a small GPT-2 or Llama-style model on your own text",
         {{"text", "FILE", "training text (repeat for more files)", true, true},
          {"out", "MODEL.gguf", "the model to write", true},
          {"arch", "gpt2|llama",
           "gpt2 (default): learned positions, LayerNorm, GELU, tied output; llama: RMSNorm, "
           "RoPE, SwiGLU, grouped-query attention, a BOS token of its own"},
          {"log", "LOSS.csv", "the loss log (appended to when resuming)"},
          {"layers", "N", "layers (default 4)"},
          {"heads", "N", "attention (query) heads (default 4)"},
          {"kv-heads", "N",
           "llama: K/V heads, a divisor of --heads; query head h reads K/V head "
           "h / (heads / kv-heads) (default: as many as heads)"},
          {"ffn", "N", "llama: SwiGLU hidden size (default 8/3 × width, rounded up to 32)"},
          {"tie-output", nullptr, "llama: the output head is the token embedding matrix"},
          {"width", "N", "model width (default 128)"},
          {"context", "N", "context length (default 256)"},
          {"vocab", "N", "vocabulary size, llama's BOS included (default 1024)"},
          {"batch", "N", "sequences per step (default 8)"},
          {"steps", "N", "optimizer steps (default 2000)"},
          {"lr", "RATE", "peak learning rate (default 1e-3)"},
          {"warmup", "N", "warm-up steps (default 100)"},
          {"seed", "S", "random seed (default 1337)"},
          {"held-out", "FRACTION", "share of the text held out (default 0.05)"},
          {"held-out-text", "FILE", "a held-out text of its own"},
          {"eval-every", "N", "steps between held-out evaluations (default 100)"},
          {"name", "NAME", "the model's general.name"},
          {"line-windows", nullptr,
           "gpt2: windows as llama's: BOS, then the text from the start of a line"},
          {"repeat-fraction", "F",
           "share of windows (0..1) that are BOS, the first context/2 tokens from a line start, "
           "then the same span again from its start until full: a copy task that trains "
           "induction heads (line windows only; default 0)"},
          {"dropout", "P",
           "llama: residual dropout, the share (0..0.9) of each attention and MLP output zeroed "
           "in training (default 0); with --resume it changes the checkpoint's dropout from "
           "there on"},
          {"random-repeat-fraction", "F",
           "chance (0..1) that a window not given a repeated span is BOS, m tokens drawn at "
           "random from the text's distinct tokens (m from context/8 to context/2, per window), "
           "then the same m again and again, with only the copies after their first token in "
           "the loss: the induction test as a task (line windows only; default 0). With "
           "--resume, this or --repeat-fraction changes the checkpoint's data mix from there on"},
          {"any-start-fraction", "F",
           "share of text windows (0..1) that start at any token instead of a line start, after "
           "BOS all the same (line windows only; default 0); with --resume it changes the "
           "checkpoint's from there on"},
          {"random-repeat-draw", "uniform|frequency",
           "how random repeats draw their m tokens: uniformly from the text's distinct tokens "
           "(default), or as often as each occurs in the text (from random places of it), which "
           "a model learns to copy sooner; with --resume it changes the checkpoint's draw"},
          {"vocab-from", "MODEL.gguf",
           "reuse this model's tokenizer instead of learning one (--vocab is then ignored)"},
          {"checkpoint", "PATH",
           "write the whole training state here (temporary file, then rename)"},
          {"checkpoint-every", "N", "steps between checkpoints (default 500 with --checkpoint)"},
          {"resume", "PATH",
           "continue from a checkpoint: its shape, schedule, seed, data options and vocabulary; "
           "give the same --text. --steps given with it stretches (or shortens) the schedule's "
           "cosine to end at that step, from the resumed step on"},
          {"stop-after", "N",
           "end after step N as if interrupted (the schedule still runs to --steps)"}},
         runTrain},
        {"convert",
         "rewrite a model's weight matrices as another type (f16, q8_0, q4_k, ...), as "
         "llama-quantize does",
         {kModel,
          {"out", "MODEL.gguf", "the model to write", true},
          {"type", "T",
           "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k or q6_k: every "
           "matrix whose rows split into its blocks (norms and biases stay as they are)",
           true}},
         runConvert},
        {"bench",
         "decode speed of a random model of a chosen shape, against memory bandwidth",
         {{"arch", "gpt2|llama", "architecture of the random model (default gpt2)"},
          {"type", "T",
           "weight type of the matrices: f32 (default), f16, bf16, q8_0, q4_0, q4_1, q5_0, "
           "q5_1, q2_k, q3_k, q4_k, q5_k, q6_k"},
          {"layers", "N", "layers (default 12)"},
          {"width", "N", "width (default 768)"},
          {"heads", "N", "heads (default 12)"},
          {"kv-heads", "N", "KV heads, llama only (default: as many as heads)"},
          {"ff", "N", "feed-forward width (default 4 × width)"},
          {"context", "N", "context (default 1024)"},
          {"vocab", "N", "vocabulary (default 50257)"},
          {"prompt-tokens", "N", "prompt length"},
          {"steps", "N", "decode steps (default 32)"},
          {"keep-model", "PATH", "keep the model file it writes"},
          {"cached-only", nullptr, "only the cached decode with all threads (no recompute run)"},
          {"backend", "cpu|opencl", "also decode on an OpenCL device beside the CPU"},
          kDevice,
          {"no-warmup", nullptr, "show OpenCL's start-up without the warm-up pass"},
          {"scales", "stored|wide",
           "OpenCL: the block types' float16 scales as stored or widened to float32 (default: "
           "wide on CPU devices)"},
          {"cpu-simd", "on|off",
           "OpenCL: the x86 SIMD kernels of CPU devices (8-bit activations for block types) or "
           "the portable ones (default: on where they build)"},
          {"huge-pages", "on|off",
           "OpenCL on CPU devices: the weights in host memory on huge pages (default: on)"},
          {"fused", "on|off",
           "OpenCL: decode steps a decoder layer per command (default: on PoCL's CPU device)"},
          kJson},
         runBench},
    };
    return table;
}

// The desktop app itself: `kvscope [options]` (no command).
const Command& appCommand() {
    static const Command app{
        "",
        "the desktop app",
        {kModel,
         {"screenshot", "PNG", "render the window to PNG headless and quit"},
         {"prompt", "TEXT", "the prompt"},
         {"steps", "N", "with --screenshot: tokens to step (default 6)"},
         {"tab", "VIEW", "step, attention, cache, memory, calculator, next or sharing"},
         {"size", "WxH", "the window's size (default: most of the screen)"},
         {"layer", "L", "the layer the views show"},
         {"head", "H", "the head the views show"},
         {"compare", nullptr, "with --screenshot: replay the tokens without the cache too"},
         {"presenter", nullptr, "start in presenter mode (F5: full screen, projector theme)"},
         {"speculative", "lookup|model:PATH",
          "speculative decoding on: each step shows one phase of a round (drafted, verified, "
          "resolved)"},
         {"draft", "N", "tokens drafted per round of --speculative (1..16, default 4)"},
         kColormap,
         kKvType,
         kWindow,
         kSinks,
         kHeavy,
         kBlock},
        nullptr};
    return app;
}

const Command* findCommand(const std::string& name) {
    for (const Command& c : commands())
        if (name == c.name) return &c;
    return nullptr;
}

std::string optionUsage(const Option& o) {
    std::string s = std::string("--") + o.name + (o.value ? std::string(" ") + o.value : "");
    if (o.repeatable) s += " ...";
    return o.required ? s : "[" + s + "]";
}

// "kvscope NAME [--a A] --b B ...", wrapped to `width` with the options aligned after the
// longest command name.
std::string usageLine(const Command& c, size_t width = 100) {
    std::string out = std::string("kvscope") + (*c.name ? std::string(" ") + c.name : "");
    const size_t indent = 16;  // "kvscope " + the longest name ("devices") + a space
    out.resize(std::max(out.size() + 1, indent), ' ');
    size_t lineStart = 0;
    bool first = true;
    for (const Option& o : c.options) {
        const std::string u = optionUsage(o);
        if (!first && out.size() - lineStart + 1 + u.size() > width) {
            out += "\n";
            lineStart = out.size();
            out += std::string(indent, ' ');
        } else if (!first) {
            out += " ";
        }
        out += u;
        first = false;
    }
    return out;
}

// Every line of text after the first indented by n spaces.
std::string indentLines(std::string text, size_t n) {
    for (size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 1))
        text.insert(at + 1, n, ' ');
    return text;
}

// A command's parser, built from its options; "--help" and "-h" are its own.
void buildParser(const Command& c, QCommandLineParser& p) {
    p.setOptionsAfterPositionalArgumentsMode(QCommandLineParser::ParseAsOptions);
    p.setSingleDashWordOptionMode(QCommandLineParser::ParseAsLongOptions);
    for (const Option& o : c.options)
        p.addOption(o.value ? QCommandLineOption(o.name, QString::fromStdString(o.help), o.value)
                            : QCommandLineOption(o.name, QString::fromStdString(o.help)));
    p.addOption(QCommandLineOption(QStringList{"h", "help"}, "this help"));
}

// The parser's own words, in ours (one line naming the option).
std::string usageErrorOf(const QString& parserError) {
    const QString e = parserError;
    auto quoted = [&] {
        const qsizetype a = e.indexOf('\''), b = e.lastIndexOf('\'');
        QString name = a >= 0 && b > a ? e.mid(a + 1, b - a - 1) : e;
        while (name.startsWith('-')) name.remove(0, 1);
        return name.toStdString();
    };
    if (e.startsWith("Unknown option")) return "unknown option --" + quoted();
    if (e.startsWith("Missing value after")) return "option --" + quoted() + " needs a value";
    if (e.startsWith("Unexpected value after")) return "option --" + quoted() + " takes no value";
    return e.toStdString();
}

// Parses rest against c's options; help (nullopt) when --help or -h was asked for.
std::optional<CliArgs> parseArgs(const Command& c, const std::vector<std::string>& rest) {
    QCommandLineParser p;
    buildParser(c, p);
    QStringList argv{QString("kvscope ") + c.name};
    for (const std::string& a : rest) argv << QString::fromStdString(a);
    if (!p.parse(argv)) throw UsageError(usageErrorOf(p.errorText()));
    if (p.isSet("help")) return std::nullopt;
    if (!p.positionalArguments().isEmpty())
        throw UsageError("unexpected argument '" + p.positionalArguments().first().toStdString() +
                         "'");
    std::map<std::string, std::vector<std::string>> values;
    for (const Option& o : c.options) {
        if (!p.isSet(o.name)) continue;
        auto& v = values[o.name];
        if (o.value)
            for (const QString& s : p.values(o.name)) v.push_back(s.toStdString());
        else
            v.emplace_back();
    }
    for (const Option& o : c.options)
        if (o.required && !values.count(o.name))
            throw UsageError(std::string("option --") + o.name + " is required");
    return CliArgs(std::move(values));
}

int runCommand(const Command& c, const std::vector<std::string>& rest) {
    const std::optional<CliArgs> args = parseArgs(c, rest);
    if (!args) {
        std::fputs(commandHelpText(c.name).c_str(), stdout);
        return 0;
    }
    return c.run(*args);
}

}  // namespace

CliArgs parseAppArgs(const std::vector<std::string>& args) {
    std::optional<CliArgs> parsed = parseArgs(appCommand(), args);
    if (!parsed) throw UsageError("the desktop app's options are in kvscope --help");
    return *parsed;
}

std::string helpText() {
    std::string s =
        "kvscope: watch a transformer decode, one token at a time, and see its KV cache.\n\n"
        "usage: kvscope COMMAND [options]    a command (kvscope COMMAND --help for one)\n"
        "       " +
        indentLines(usageLine(appCommand()), 7) +
        "\n"
        "                                    the desktop app\n\n"
        "commands:\n";
    for (const Command& c : commands())
        s += "  " + std::string(c.name) + std::string(10 - std::string(c.name).size(), ' ') +
             c.summary + "\n";
    s += "\n";
    for (const Command& c : commands()) {
        s += "  " + indentLines(usageLine(c), 2) + "\n";
        if (c.note) s += std::string(18, ' ') + "(" + c.note + ")\n";
    }
    s += "\nWithout --model, commands use the built-in model.\n"
         "Exit status: 0 success, 1 failure, 2 usage error.\n";
    return s;
}

std::string commandHelpText(const std::string& command) {
    const Command* c = findCommand(command);
    if (!c) return {};
    std::string s = std::string("kvscope ") + c->name + ": " + c->summary +
                    "\n\nusage: " + indentLines(usageLine(*c), 7) + "\n";
    if (c->note) s += std::string("       (") + c->note + ")\n";
    s += "\noptions:\n";
    size_t width = 0;
    std::vector<std::string> heads;
    for (const Option& o : c->options) {
        heads.push_back(std::string("--") + o.name + (o.value ? std::string(" ") + o.value : ""));
        width = std::max(width, heads.back().size());
    }
    for (size_t i = 0; i < heads.size(); ++i)
        s += "  " + heads[i] + std::string(width - heads[i].size() + 2, ' ') + c->options[i].help +
             (c->options[i].required ? " (required)" : "") + "\n";
    s += "  --help" + std::string(width - 6 + 2, ' ') + "this help\n";
    return s;
}

namespace {
// Text as troff: backslashes and leading dots or quotes escaped.
std::string troff(const std::string& text) {
    std::string out;
    bool lineStart = true;
    for (char ch : text) {
        if (lineStart && (ch == '.' || ch == '\'')) out += "\\&";
        if (ch == '\\')
            out += "\\e";
        else if (ch == '-')
            out += "\\-";
        else
            out += ch;
        lineStart = ch == '\n';
    }
    return out;
}
}  // namespace

std::string manPage() {
    std::string m = ".TH KVSCOPE 1 \"\" \"kvscope " KVSCOPE_VERSION "\" \"User Commands\"\n";
    m += ".SH NAME\nkvscope \\- transformer decoding and the KV cache, one token at a time\n";
    m += ".SH SYNOPSIS\n.B kvscope\n[\\fIoptions\\fR]\n.br\n.B kvscope\n\\fIcommand\\fR "
         "[\\fIoptions\\fR]\n";
    m += ".SH DESCRIPTION\nWithout a command, kvscope opens the desktop app; with one, it runs "
         "it on the command line. This page is made from the same text as \\fBkvscope "
         "\\-\\-help\\fR.\n.PP\n.nf\n" +
         troff(helpText()) + ".fi\n";
    m += ".SH COMMANDS\n";
    for (const Command& c : commands()) {
        m += std::string(".SS ") + c.name + "\n.nf\n" + troff(commandHelpText(c.name)) + ".fi\n";
    }
    return m;
}

int runCli(const std::vector<std::string>& argv) {
    try {
        if (argv.size() == 1 && argv[0] == "--man") {  // the man page, for the install
            std::fputs(manPage().c_str(), stdout);
            return 0;
        }
        if (argv.empty() || argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
            const std::string text =
                argv.size() >= 2 && argv[0] == "help" ? commandHelpText(argv[1]) : helpText();
            if (text.empty()) throw UsageError("unknown command '" + argv[1] + "'");
            std::fputs(text.c_str(), argv.empty() ? stderr : stdout);
            return 0;
        }
        if (argv[0] == "--version") {
            std::printf("kvscope %s\n", KVSCOPE_VERSION);
            return 0;
        }
        const Command* c = findCommand(argv[0]);
        if (!c) throw UsageError("unknown command '" + argv[0] + "'");
        return runCommand(*c, std::vector<std::string>(argv.begin() + 1, argv.end()));
    } catch (const UsageError& e) {
        std::fprintf(stderr, "kvscope: %s (see kvscope --help)\n", e.what());
        return 2;
    } catch (const Error& e) {
        std::fprintf(stderr, "kvscope: %s\n", e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "kvscope: out of memory\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kvscope: %s\n", e.what());
        return 1;
    }
}

}  // namespace kvscope::app
