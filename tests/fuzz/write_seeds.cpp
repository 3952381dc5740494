// Writes the committed seed corpora (tests/fuzz/corpus/TARGET/): tiny valid GGUF models of each
// family and weight type for the reader and the session, and hard strings for the tokenizer.
//   write_seeds CORPUS_DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_models.h"

namespace fs = std::filesystem;

static void put(const fs::path& file, const std::string& bytes) {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: write_seeds CORPUS_DIR\n");
        return 2;
    }
    const fs::path dir = argv[1];
    int n = 0;
    for (kvscope::Arch arch : {kvscope::Arch::Gpt2, kvscope::Arch::Llama})
        for (kvscope::TensorType t :
             {kvscope::TensorType::F32, kvscope::TensorType::F16, kvscope::TensorType::Q8_0}) {
            kvscope::RandomModelSpec s = kvscope::fuzz::tinySpec();
            s.arch = arch;
            s.weightType = t;
            if (t == kvscope::TensorType::Q8_0) s.nEmbd = s.nFf = 32;  // whole Q8_0 blocks
            if (arch == kvscope::Arch::Llama) s.nHeadKv = 1;
            const std::vector<uint8_t> b = kvscope::randomModel(s).toBytes();
            const std::string bytes(b.begin(), b.end());
            const std::string name = "model-" + std::to_string(n++);
            put(dir / "gguf" / name, bytes);
            put(dir / "session" / name, bytes);
        }
    // the other families, float32: their loaders and forward passes (NEOX and partial RoPE,
    // biases, fused tensors, post-norms, soft caps, a window)
    for (kvscope::Arch arch : {kvscope::Arch::Qwen2, kvscope::Arch::Phi3, kvscope::Arch::Gemma,
                               kvscope::Arch::Gemma2}) {
        kvscope::RandomModelSpec s = kvscope::fuzz::tinySpec();
        s.arch = arch;
        s.nHeadKv = arch == kvscope::Arch::Phi3 ? s.nHead : 1;
        if (arch == kvscope::Arch::Phi3) s.nRot = (s.nEmbd / s.nHead) / 2;
        if (arch == kvscope::Arch::Gemma2) s.slidingWindow = 2;
        const std::vector<uint8_t> b = kvscope::randomModel(s).toBytes();
        const std::string bytes(b.begin(), b.end());
        const std::string name = "model-" + std::to_string(n++);
        put(dir / "gguf" / name, bytes);
        put(dir / "session" / name, bytes);
    }
    static const char kInvalid[] = "invalid: \xff\xfe \xc3 \xe2\x82 \xf0\x9f\x98";
    const std::vector<std::string> texts = {
        "In the beginning God created the heaven and the earth.",
        "  leading  and   repeated spaces\t\ttabs\n\nnewlines\r\n",
        "digits 1 12 123 1234 12345 123456 1234567",
        "don't we'll they're I'm you've she'd it's",
        "accents: café naïve Ångström",
        "CJK: 中文字符 日本語 한국어",
        "emoji: 🙂👍🏽 🇩🇪",
        std::string(kInvalid, sizeof kInvalid - 1),
        "<|endoftext|> special",
        "<s><start_of_turn>user\n  hello▁world<end_of_turn>\n<a><b>b></s>"};
    for (size_t i = 0; i < texts.size(); ++i)
        put(dir / "tokenizer" / ("text-" + std::to_string(i)), texts[i]);
    std::printf("wrote %d models and %zu texts under %s\n", n, texts.size(), dir.c_str());
    return 0;
}
