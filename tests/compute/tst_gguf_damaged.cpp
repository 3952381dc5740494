// The GGUF reader against damaged files: a table of patched fields, every truncation, every
// single-byte corruption and nesting past the limit end in a kvscope::Error naming the field and
// its offset, never in anything else (this test runs under ASan/UBSan too).
//
// The damaged-file table patches a small valid image (baseImage) at offsets documented in
// namespace off; the test baseLayout checks those offsets first, so a change of the writer's
// layout fails there rather than silently testing the wrong bytes.
#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "gguf/dequant.h"
#include "gguf/gguf.h"
#include "gguf_images.h"

using namespace kvscope;

Q_DECLARE_METATYPE(kvscope::GgufValue)

using namespace gguf_testing;

namespace {

// A file with one key "deep" holding `depth` arrays nested in each other around one int32 42.
Bytes nestedImage(int depth) {
    Bytes b{'G', 'G', 'U', 'F'};
    auto put = [&b](const auto& v) {  // resize + memcpy: GCC 12 warns falsely on a small insert
        const size_t at = b.size();
        b.resize(at + sizeof v);
        std::memcpy(b.data() + at, &v, sizeof v);
    };
    put(uint32_t{3});
    put(uint64_t{0});  // tensor_count
    put(uint64_t{1});  // kv_count
    put(uint64_t{4});
    for (char c : {'d', 'e', 'e', 'p'}) b.push_back(static_cast<uint8_t>(c));
    put(static_cast<uint32_t>(GgufType::ARRAY));
    for (int i = 1; i < depth; ++i) {
        put(static_cast<uint32_t>(GgufType::ARRAY));
        put(uint64_t{1});
    }
    put(static_cast<uint32_t>(GgufType::INT32));
    put(uint64_t{1});
    put(int32_t{42});
    return b;
}

}  // namespace

class TstGgufDamaged : public QObject {
    Q_OBJECT
  private slots:
    void baseLayout();
    void damagedFile_data();
    void damagedFile();
    void truncatedEverywhere();
    void singleByteCorruptions();
    void nestingLimit_data();
    void nestingLimit();
};

void TstGgufDamaged::baseLayout() {
    const Bytes b = baseImage();
    QCOMPARE(b.size(), off::fileSize);
    QCOMPARE(readAt<uint32_t>(b, off::version), 3u);
    QCOMPARE(readAt<uint64_t>(b, off::tensorCount), uint64_t{2});
    QCOMPARE(readAt<uint64_t>(b, off::kvCount), uint64_t{5});
    QCOMPARE(readAt<uint64_t>(b, off::alignKeyLen), uint64_t{17});
    QCOMPARE(std::memcmp(b.data() + off::alignKeyLen + 8, "general.alignment", 17), 0);
    QCOMPARE(readAt<uint32_t>(b, off::alignType), static_cast<uint32_t>(GgufType::UINT32));
    QCOMPARE(readAt<uint32_t>(b, off::alignValue), 32u);
    QCOMPARE(b[off::keyA], uint8_t{'a'});
    QCOMPARE(readAt<uint32_t>(b, off::typeA), static_cast<uint32_t>(GgufType::UINT32));
    QCOMPARE(readAt<uint32_t>(b, off::valueA), 7u);
    QCOMPARE(readAt<uint64_t>(b, off::kvS), uint64_t{1});
    QCOMPARE(b[off::keyS], uint8_t{'s'});
    QCOMPARE(readAt<uint32_t>(b, off::typeS), static_cast<uint32_t>(GgufType::STRING));
    QCOMPARE(readAt<uint64_t>(b, off::strLenS), uint64_t{2});
    QCOMPARE(readAt<uint32_t>(b, off::elemR), static_cast<uint32_t>(GgufType::INT32));
    QCOMPARE(readAt<uint64_t>(b, off::countR), uint64_t{2});
    QCOMPARE(readAt<uint32_t>(b, off::elemN), static_cast<uint32_t>(GgufType::ARRAY));
    QCOMPARE(readAt<uint64_t>(b, off::countN), uint64_t{2});
    QCOMPARE(readAt<uint32_t>(b, off::inner0Elem), static_cast<uint32_t>(GgufType::INT32));
    QCOMPARE(readAt<uint64_t>(b, off::inner0Count), uint64_t{1});
    QCOMPARE(readAt<uint64_t>(b, off::nameLenT), uint64_t{1});
    QCOMPARE(b[off::nameLenT + 8], uint8_t{'t'});
    QCOMPARE(readAt<uint32_t>(b, off::nDimsT), 2u);
    QCOMPARE(readAt<uint64_t>(b, off::ne0T), uint64_t{4});
    QCOMPARE(readAt<uint64_t>(b, off::ne1T), uint64_t{2});
    QCOMPARE(readAt<uint32_t>(b, off::typeT), static_cast<uint32_t>(TensorType::F32));
    QCOMPARE(readAt<uint64_t>(b, off::offsetT), uint64_t{0});
    QCOMPARE(readAt<uint64_t>(b, off::nameLenU), uint64_t{1});
    QCOMPARE(b[off::nameU], uint8_t{'u'});
    QCOMPARE(readAt<uint64_t>(b, off::ne0U), uint64_t{32});
    QCOMPARE(readAt<uint32_t>(b, off::typeU), static_cast<uint32_t>(TensorType::Q8_0));
    QCOMPARE(readAt<uint64_t>(b, off::offsetU), uint64_t{32});
    for (size_t i = off::infosEnd; i < off::dataStart; ++i) QCOMPARE(b[i], uint8_t{0});

    const GgufFile f = GgufFile::fromBytes(b, "base.gguf");
    QCOMPARE(f.dataOffset(), uint64_t{off::dataStart});
    QCOMPARE(f.tensors()[1].offset + f.tensors()[1].bytes,
             uint64_t{off::dataUEnd - off::dataStart});
    QCOMPARE(f.tensorData(f.tensors()[1]).data() - f.tensorData(f.tensors()[0]).data(),
             std::ptrdiff_t{off::dataU - off::dataStart});
}

void TstGgufDamaged::damagedFile_data() {
    QTest::addColumn<QByteArray>("image");
    QTest::addColumn<QStringList>("expected");  // each must appear in the message

    const Bytes base = baseImage();
    auto row = [](const char* name, const Bytes& image, const QStringList& expected) {
        QTest::newRow(name) << toQ(image) << expected;
    };
    auto withByte = [&base](size_t at, char c) {
        Bytes b = base;
        b[at] = static_cast<uint8_t>(c);
        return b;
    };

    row("empty file", {}, {"empty"});
    row("3 bytes 'GGU'", {'G', 'G', 'U'}, {"magic at offset 0 runs past the end", "size 3"});
    row("magic GGUX", withByte(3, 'X'), {"bad magic 'GGUX' at offset 0, expected 'GGUF'"});
    row("magic of zero bytes", patched(base, 0, uint32_t{0}),
        {"bad magic '\\x00\\x00\\x00\\x00' at offset 0"});
    row("version 1", patched(base, off::version, uint32_t{1}),
        {"version 1 at offset 4", "expected 2 or 3"});
    row("version 4", patched(base, off::version, uint32_t{4}),
        {"version 4 at offset 4", "expected 2 or 3"});
    row("version 0", patched(base, off::version, uint32_t{0}), {"version 0 at offset 4"});
    row("version 0xFFFFFFFF", patched(base, off::version, uint32_t{0xFFFFFFFF}),
        {"version 4294967295 at offset 4", "expected 2 or 3"});
    row("version 3 big-endian", patched(base, off::version, uint32_t{0x03000000}),
        {"version 50331648", "big-endian"});
    row("header cut after version", Bytes(base.begin(), base.begin() + 8),
        {"tensor_count at offset 8 runs past the end"});

    row("kv_count 2^60", patched(base, off::kvCount, k2p60),
        {"kv_count 1152921504606846976 at offset 16"});
    row("kv_count 2^64-1", patched(base, off::kvCount, kU64Max), {"kv_count 18446744073709551615"});
    row("kv_count one too many", patched(base, off::kvCount, uint64_t{6}), {"string length"});
    row("tensor_count 2^60", patched(base, off::tensorCount, k2p60),
        {"tensor_count 1152921504606846976 at offset 8"});
    row("tensor_count 2^64-1", patched(base, off::tensorCount, kU64Max), {"tensor_count"});
    Bytes big = base;  // trailing bytes after the data section are allowed
    big.resize(17u << 20);
    row("kv_count 2^20+1 in a 17 MiB file", patched(big, off::kvCount, (uint64_t{1} << 20) + 1),
        {"kv_count 1048577 at offset 16 exceeds the limit of 1048576"});
    row("array count 2^24+1 of UINT8 in a 17 MiB file",
        patched(patched(big, off::elemR, uint32_t{0}), off::countR, (uint64_t{1} << 24) + 1),
        {"array count 16777217 at offset 114 (key 'r') exceeds the limit of 16777216"});
    big.resize(40u << 20);
    row("tensor_count 2^20+1 in a 40 MiB file",
        patched(big, off::tensorCount, (uint64_t{1} << 20) + 1),
        {"tensor_count 1048577 at offset 8 exceeds the limit of 1048576"});
    row("tensor_count one too many", patched(base, off::tensorCount, uint64_t{3}),
        {"n_dims 0", "tensor ''"});

    row("key string length 2^60", patched(base, off::alignKeyLen, k2p60),
        {"string length 1152921504606846976 at offset 24 (key 0) runs past the end of the file "
         "(size 384)"});
    row("value string length 2^60", patched(base, off::strLenS, k2p60),
        {"string length 1152921504606846976 at offset 87 (key 's')"});
    row("value string length 2^64-1", patched(base, off::strLenS, kU64Max),
        {"string length 18446744073709551615 at offset 87"});
    row("value string one byte past the end", patched(base, off::strLenS, uint64_t{384 - 95 + 1}),
        {"string length 290 at offset 87", "past the end"});
    row("tensor name length 2^60", patched(base, off::nameLenU, k2p60),
        {"string length 1152921504606846976 at offset 232 (name of tensor 1)"});

    row("array count 2^60", patched(base, off::countR, k2p60),
        {"array count 1152921504606846976 at offset 114 (key 'r')"});
    row("array count 2^64-1 of UINT8",
        patched(patched(base, off::elemR, uint32_t{0}), off::countR, kU64Max),
        {"array count 18446744073709551615 at offset 114"});
    row("array of arrays count 2^60", patched(base, off::countN, k2p60),
        {"array count 1152921504606846976 at offset 147 (key 'n')"});
    row("inner array count 2^60", patched(base, off::inner0Count, k2p60),
        {"array count 1152921504606846976 at offset 159 (key 'n')"});

    row("unknown value type 13", patched(base, off::typeA, uint32_t{13}),
        {"unknown value type 13 at offset 66 (key 'a')"});
    row("unknown value type 99", patched(base, off::typeA, uint32_t{99}),
        {"unknown value type 99 at offset 66"});
    row("unknown array element type 13", patched(base, off::elemR, uint32_t{13}),
        {"unknown array element type 13 at offset 110 (key 'r')"});
    row("unknown inner element type 99", patched(base, off::inner0Elem, uint32_t{99}),
        {"unknown array element type 99 at offset 155 (key 'n')"});
    row("bool value 7", patched(base, off::typeA, static_cast<uint32_t>(GgufType::BOOL)),
        {"bool value 7 at offset 70 (key 'a')"});
    row("duplicate key", withByte(off::keyS, 'a'), {"duplicate key 'a' at offset 74"});

    row("alignment 48", patched(base, off::alignValue, uint32_t{48}),
        {"general.alignment", "48", "not a power of two"});
    row("alignment 0", patched(base, off::alignValue, uint32_t{0}), {"not a power of two"});
    row("alignment of type INT32",
        patched(base, off::alignType, static_cast<uint32_t>(GgufType::INT32)),
        {"general.alignment", "has type INT32, expected UINT32"});

    row("n_dims 5", patched(base, off::nDimsT, uint32_t{5}),
        {"n_dims 5 at offset 200 (tensor 't')", "expected 1 to 4"});
    row("n_dims 0", patched(base, off::nDimsT, uint32_t{0}), {"n_dims 0 at offset 200"});
    row("n_dims 2^32-1", patched(base, off::nDimsT, uint32_t{0xFFFFFFFF}), {"n_dims 4294967295"});
    row("dimension ne[0] 0", patched(base, off::ne0T, uint64_t{0}), {"ne[0] 0 at offset 204"});
    row("dimension ne[1] 0", patched(base, off::ne1T, uint64_t{0}),
        {"ne[1] 0 at offset 212 (tensor 't')"});
    row("dimensions 2^32 x 2^32 overflow",
        patched(patched(base, off::ne0T, uint64_t{1} << 32), off::ne1T, uint64_t{1} << 32),
        {"ne[1]", "overflow"});
    row("dimensions 2^40 x 2^40 overflow",
        patched(patched(base, off::ne0T, uint64_t{1} << 40), off::ne1T, uint64_t{1} << 40),
        {"ne[1]", "overflow"});
    row("dimension 2^63 overflows int64", patched(base, off::ne0T, uint64_t{1} << 63),
        {"ne[0]", "overflow"});
    row("F32 byte size overflows 64 bits",
        patched(patched(base, off::ne0T, uint64_t{1} << 62), off::ne1T, uint64_t{1}),
        {"tensor 't'", "overflows 64 bits"});
    row("dimension 2^40 runs past the data", patched(base, off::ne0T, uint64_t{1} << 40),
        {"tensor 't'", "past the end"});
    row("unknown tensor type 99", patched(base, off::typeT, uint32_t{99}),
        {"tensor 't' has unknown type 99 at offset 220"});
    row("unknown tensor type 4", patched(base, off::typeT, uint32_t{4}),
        {"tensor 't' has unknown type 4"});
    row("Q8_0 row of 33 values", patched(base, off::ne0U, uint64_t{33}),
        {"tensor 'u'", "not a multiple of the block size 32"});
    row("tensor offset past the end", patched(base, off::offsetU, uint64_t{1024}),
        {"tensor 'u'", "offset 1024", "past the end"});
    row("tensor offset near 2^64", patched(base, off::offsetU, kU64Max - 31),
        {"tensor 'u'", "past the end"});
    row("tensor offset misaligned", patched(base, off::offsetU, uint64_t{33}),
        {"tensor 'u' offset 33 at offset 257 is misaligned"});
    row("duplicate tensor name", withByte(off::nameU, 't'),
        {"duplicate tensor name 't' at offset 232"});
    row("data cut inside the last tensor", Bytes(base.begin(), base.begin() + off::dataUEnd - 1),
        {"tensor 'u'", "past the end"});
    row("nested 9 deep", nestedImage(9), {"nested more than 8 deep", "key 'deep'"});
}

void TstGgufDamaged::damagedFile() {
    QFETCH(QByteArray, image);
    QFETCH(QStringList, expected);
    const auto message = errorOf([&] { GgufFile::fromBytes(fromQ(image), "damaged.gguf"); });
    QVERIFY2(message.has_value(), "no Error thrown");
    QVERIFY2(message->rfind("damaged.gguf: ", 0) == 0, message->c_str());
    for (const QString& part : expected) {
        QVERIFY2(contains(*message, part.toStdString()), message->c_str());
    }
}

void TstGgufDamaged::truncatedEverywhere() {
    const Bytes base = baseImage();
    std::vector<size_t> cuts;
    for (size_t n = 0; n <= off::dataStart; ++n) cuts.push_back(n);
    for (size_t n : {off::dataStart + 1, size_t{300}, off::dataU - 1, off::dataU, off::dataU + 1,
                     off::dataUEnd - 1}) {
        cuts.push_back(n);
    }
    for (size_t n : cuts) {
        const auto message = errorOf(
            [&] { GgufFile::fromBytes(Bytes(base.begin(), base.begin() + n), "cut.gguf"); });
        QVERIFY2(message.has_value(), qPrintable(QStringLiteral("cut at %1 parsed").arg(n)));
        QVERIFY2(message->rfind("cut.gguf: ", 0) == 0, message->c_str());
    }
    // The last tensor's end is the shortest file that parses (the trailing padding is optional).
    const GgufFile f = GgufFile::fromBytes(Bytes(base.begin(), base.begin() + off::dataUEnd));
    QCOMPARE(f.tensors().size(), size_t{2});
}

void TstGgufDamaged::singleByteCorruptions() {
    // Whatever one byte of the header becomes, the reader parses or throws Error; never anything
    // else (the sanitizer build also checks that no read strays out of bounds).
    const Bytes base = baseImage();
    int parsed = 0, refused = 0;
    for (size_t at = 0; at < off::dataStart; ++at) {
        const uint8_t original = base[at];
        for (uint8_t v : {uint8_t{0}, uint8_t{0xFF}, uint8_t{0x80}, uint8_t(original ^ 1),
                          uint8_t(original + 1)}) {
            if (v == original) continue;
            Bytes b = base;
            b[at] = v;
            try {
                const GgufFile f = GgufFile::fromBytes(std::move(b), "fuzz.gguf");
                for (const GgufTensorInfo& t : f.tensors()) {
                    const auto data = f.tensorData(t);
                    QVERIFY(data.size() == t.bytes);
                    if (t.type == TensorType::F32 || t.type == TensorType::Q8_0) {
                        QCOMPARE(toFloat(t.type, data, t.elements(), t.name).size(), t.elements());
                    }
                }
                ++parsed;
            } catch (const Error& e) {
                QVERIFY2(std::string(e.what()).rfind("fuzz.gguf: ", 0) == 0, e.what());
                ++refused;
            }
        }
    }
    QVERIFY(refused > 100);
    QVERIFY(parsed > 0);  // e.g. changed characters inside strings
}

void TstGgufDamaged::nestingLimit_data() {
    QTest::addColumn<int>("depth");
    QTest::addColumn<bool>("ok");
    QTest::newRow("depth 1") << 1 << true;
    QTest::newRow("depth 8") << 8 << true;
    QTest::newRow("depth 9") << 9 << false;
    QTest::newRow("depth 100000") << 100000 << false;
}

void TstGgufDamaged::nestingLimit() {
    QFETCH(int, depth);
    QFETCH(bool, ok);
    if (!ok) {
        const auto message = errorOf([&] { GgufFile::fromBytes(nestedImage(depth), "deep.gguf"); });
        QVERIFY(message.has_value());
        QVERIFY2(contains(*message, "nested more than 8 deep"), message->c_str());
        return;
    }
    const GgufFile f = GgufFile::fromBytes(nestedImage(depth), "deep.gguf");
    const GgufValue* v = f.find("deep");
    QVERIFY(v != nullptr);
    for (int level = 0; level < depth; ++level) {
        QCOMPARE(v->type(), GgufType::ARRAY);
        QCOMPARE(v->asArray()->size(), size_t{1});
        v = &v->asArray()->front();
    }
    QCOMPARE(v->asInt(), std::optional<int64_t>(42));
}

QTEST_GUILESS_MAIN(TstGgufDamaged)
#include "tst_gguf_damaged.moc"
