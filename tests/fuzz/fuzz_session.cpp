// libFuzzer target: a whole decode on a fuzzed model file. The input is a GGUF image (the seeds
// are tiny valid models; the fuzzer mutates shapes, metadata and weights): load it, prefill a
// prompt, step and step back, then a speculative round (prompt lookup drafts, one batched
// verification pass, rollback). Everything either works or ends in kvscope::Error (a refused file,
// a NaN the sampler reports); never a crash or an out-of-bounds access.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/decode_session.h"
#include "runtime/speculative.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        kvscope::GgufFile f =
            kvscope::GgufFile::fromBytes(std::vector<uint8_t>(data, data + size), "fuzz");
        auto model = std::make_shared<const kvscope::Model>(kvscope::Model::fromGguf(std::move(f)));
        // Keep each run cheap: the fuzzer looks for crashes, not for big models.
        const kvscope::ModelConfig& c = model->config;
        if (static_cast<uint64_t>(c.nLayer) * c.nEmbd * (c.nFf + 4 * c.nEmbd) > 4'000'000 ||
            c.nCtx > 4096)
            return 0;
        kvscope::DecodeSession s(std::make_shared<kvscope::CpuBackend>(model), model->tokenizer);
        s.prefill("In the beginning");
        s.step();
        s.step();
        s.rewind(1);
        s.step();
        kvscope::SpeculativeDecoder spec(s, std::make_unique<kvscope::LookupDrafter>(), 4);
        spec.step();
        spec.step();
        spec.flush();
    } catch (const kvscope::Error&) {
    }
    return 0;
}
