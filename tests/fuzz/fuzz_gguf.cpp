// libFuzzer target: the GGUF reader on arbitrary bytes. Any input either parses (then every
// metadata value, tensor and tensor's data must be readable) or ends in kvscope::Error; anything
// else (a crash, an out-of-bounds read under ASan, undefined behaviour under UBSan) is a finding.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "gguf/dequant.h"
#include "gguf/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const kvscope::GgufFile f =
            kvscope::GgufFile::fromBytes(std::vector<uint8_t>(data, data + size), "fuzz");
        size_t sum = 0;
        for (const auto& [key, value] : f.metadata())
            sum += key.size() + (value.asString() ? 1 : 0);
        for (const kvscope::GgufTensorInfo& t : f.tensors()) {
            const auto bytes = f.tensorData(t);
            sum += bytes.size();
            try {
                const std::vector<float> values =
                    kvscope::toFloat(t.type, bytes, t.elements(), t.name);
                sum += values.size();
            } catch (const kvscope::Error&) {
            }
        }
        return sum == 1 ? 0 : 0;
    } catch (const kvscope::Error&) {
        return 0;
    }
}
