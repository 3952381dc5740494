// Tests of the GGUF reader/writer and of the F16/BF16/Q8_0 conversions.
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

using namespace kvscope;

Q_DECLARE_METATYPE(kvscope::GgufValue)

namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint64_t k2p60 = uint64_t{1} << 60;
constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

// The message of the kvscope::Error that f throws, or nullopt if it returns normally.
std::optional<std::string> errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return std::string(e.what());
    }
    return std::nullopt;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

template <typename T>
T readAt(const Bytes& b, size_t off) {
    T v{};
    std::memcpy(&v, b.data() + off, sizeof v);
    return v;
}

template <typename T>
Bytes patched(Bytes b, size_t off, T v) {
    std::memcpy(b.data() + off, &v, sizeof v);
    return b;
}

QByteArray toQ(const Bytes& b) {
    return QByteArray(reinterpret_cast<const char*>(b.data()), static_cast<qsizetype>(b.size()));
}

Bytes fromQ(const QByteArray& q) {
    return Bytes(q.begin(), q.end());
}

uint32_t bitsOf(float f) {
    return std::bit_cast<uint32_t>(f);
}

// Offsets in baseImage(), verified by the test baseLayout.
namespace off {
constexpr size_t version = 4, tensorCount = 8, kvCount = 16;
constexpr size_t alignKeyLen = 24, alignType = 49, alignValue = 53;  // key 0: general.alignment
constexpr size_t keyA = 65, typeA = 66, valueA = 70;                 // key 1: a = u32 7
constexpr size_t keyS = 82, typeS = 83, strLenS = 87;                // key 2: s = "xy"
constexpr size_t kvS = 74;
constexpr size_t elemR = 110, countR = 114;                    // key 3: r = i32 [1, 2]
constexpr size_t elemN = 143, countN = 147, inner0Elem = 155,  // key 4: n = [[1], [2, 3]]
    inner0Count = 159;
constexpr size_t nameLenT = 191, nDimsT = 200, ne0T = 204, ne1T = 212, typeT = 220,
                 offsetT = 224;  // tensor t: F32 [4, 2] at 0
constexpr size_t nameLenU = 232, nameU = 240, ne0U = 245, typeU = 253,
                 offsetU = 257;  // tensor u: Q8_0 [32] at 32
constexpr size_t infosEnd = 265, dataStart = 288, dataU = 320, dataUEnd = 354, fileSize = 384;
}  // namespace off

std::vector<float> rampValues(size_t n, float scale) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i)
        v[i] = scale * (static_cast<float>(i) - static_cast<float>(n) / 2);
    return v;
}

Bytes baseImage() {
    GgufWriter w(3);
    w.setAlignment(32);
    w.set("a", GgufValue::u32(7));
    w.set("s", GgufValue::str("xy"));
    w.set("r", GgufValue::i32Array({1, 2}));
    w.set("n", GgufValue::array(GgufType::ARRAY,
                                {GgufValue::i32Array({1}), GgufValue::i32Array({2, 3})}));
    w.addTensorF32("t", {4, 2}, rampValues(8, 0.25f));
    const std::vector<float> u = rampValues(32, 0.5f);
    w.addTensor("u", TensorType::Q8_0, {32}, fromFloat(TensorType::Q8_0, u));
    return w.toBytes();
}

// A file with one key "deep" holding `depth` arrays nested in each other around one int32 42.
Bytes nestedImage(int depth) {
    Bytes b;
    auto put = [&b](const auto& v) {
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        b.insert(b.end(), p, p + sizeof v);
    };
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    put(uint32_t{3});
    put(uint64_t{0});  // tensor_count
    put(uint64_t{1});  // kv_count
    put(uint64_t{4});
    b.insert(b.end(), {'d', 'e', 'e', 'p'});
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

struct TensorCase {
    std::string name;
    TensorType type;
    std::vector<uint64_t> ne;
    std::vector<float> values;  // as written (before encoding)
};

}  // namespace

class TstGguf : public QObject {
    Q_OBJECT

  private slots:
    // Round trips
    void valueRoundTrip_data();
    void valueRoundTrip();
    void keyOrderAndReplacement();
    void tensorRoundTrip_data();
    void tensorRoundTrip();
    void typedGetters();
    void valueConversions();
    void writerRejectsBadInput();
    void tensorBytesTable_data();
    void tensorBytesTable();

    // Conversions
    void f16Decode_data();
    void f16Decode();
    void f16Encode_data();
    void f16Encode();
    void f16EveryPatternRoundTrips();
    void bf16_data();
    void bf16();
    void nanStaysNan();
    void q8_0KnownBlock();
    void q8_0QuantizationError();
    void q8_0RejectsPartialBlocks();
    void toFloatRefusesUnsupported_data();
    void toFloatRefusesUnsupported();
    void toFloatRefusesShortData();

    // Damaged files
    void baseLayout();
    void damagedFile_data();
    void damagedFile();
    void truncatedEverywhere();
    void singleByteCorruptions();
    void nestingLimit_data();
    void nestingLimit();

    // Paths
    void openNamesMissingPath();
    void openRefusesDirectoryAndEmptyFile();
    void writeToUnwritablePathLeavesNothing();
    void writeReplacesExistingFile();
};

// ---------------------------------------------------------------------------------------------
// Round trips

void TstGguf::valueRoundTrip_data() {
    QTest::addColumn<int>("version");
    QTest::addColumn<GgufValue>("value");

    const std::vector<std::pair<const char*, GgufValue>> values = {
        {"UINT8 255", GgufValue::u8(255)},
        {"INT8 -128", GgufValue::i8(-128)},
        {"UINT16 65535", GgufValue::u16(65535)},
        {"INT16 -32768", GgufValue::i16(-32768)},
        {"UINT32 4294967295", GgufValue::u32(4294967295u)},
        {"INT32 -2147483648", GgufValue::i32(std::numeric_limits<int32_t>::min())},
        {"FLOAT32 -1.5", GgufValue::f32(-1.5f)},
        {"FLOAT32 1e-40 subnormal", GgufValue::f32(1e-40f)},
        {"BOOL true", GgufValue::boolean(true)},
        {"BOOL false", GgufValue::boolean(false)},
        {"STRING utf-8", GgufValue::str("h\xc3\xa9llo, w\xc3\xb6rld \xe2\x9c\x93")},
        {"STRING empty", GgufValue::str("")},
        {"STRING with NUL", GgufValue::str(std::string("a\0b", 3))},
        {"UINT64 max", GgufValue::u64(kU64Max)},
        {"INT64 min", GgufValue::i64(std::numeric_limits<int64_t>::min())},
        {"FLOAT64 pi", GgufValue::f64(3.141592653589793)},
        {"ARRAY empty of UINT64", GgufValue::array(GgufType::UINT64, {})},
        {"ARRAY empty of STRING", GgufValue::stringArray({})},
        {"ARRAY of STRING", GgufValue::stringArray({"alpha", "", "\xe2\x96\x81the"})},
        {"ARRAY of FLOAT32", GgufValue::f32Array({0.5f, -2.0f, 1e30f})},
        {"ARRAY of BOOL",
         GgufValue::array(GgufType::BOOL, {GgufValue::boolean(true), GgufValue::boolean(false)})},
        {"ARRAY of UINT8", GgufValue::array(GgufType::UINT8, {GgufValue::u8(0), GgufValue::u8(9)})},
        {"ARRAY of ARRAY of INT32",
         GgufValue::array(GgufType::ARRAY, {GgufValue::i32Array({1, 2, 3}), GgufValue::i32Array({}),
                                            GgufValue::i32Array({-7})})},
        {"ARRAY of ARRAY of mixed types",
         GgufValue::array(GgufType::ARRAY,
                          {GgufValue::stringArray({"x"}), GgufValue::f32Array({1.0f}),
                           GgufValue::array(GgufType::ARRAY, {GgufValue::i32Array({5})})})},
    };
    for (int version : {2, 3}) {
        for (const auto& [name, value] : values) {
            QTest::addRow("v%d %s", version, name) << version << value;
        }
    }
}

void TstGguf::valueRoundTrip() {
    QFETCH(int, version);
    QFETCH(GgufValue, value);

    GgufWriter w(static_cast<uint32_t>(version));
    w.set("before", GgufValue::u32(1));
    w.set("value", value);
    w.set("after", GgufValue::str("end"));
    const GgufFile f = GgufFile::fromBytes(w.toBytes(), "values.gguf");

    QCOMPARE(f.version(), static_cast<uint32_t>(version));
    QCOMPARE(f.keyOrder(), (std::vector<std::string>{"before", "value", "after"}));
    QCOMPARE(f.metadata().size(), size_t{3});
    const GgufValue* read = f.find("value");
    QVERIFY(read != nullptr);
    QCOMPARE(read->type(), value.type());
    if (value.type() == GgufType::ARRAY) QCOMPARE(read->elemType(), value.elemType());
    QVERIFY(*read == value);
    // The value after it was read from the right place, so the value's length was right.
    QCOMPARE(f.getString("after"), std::optional<std::string>("end"));
    QCOMPARE(f.getUint("before"), std::optional<uint64_t>(1));
    QCOMPARE(f.tensors().size(), size_t{0});
}

void TstGguf::keyOrderAndReplacement() {
    GgufWriter w;
    w.set("zeta", GgufValue::u32(1));
    w.set("alpha", GgufValue::u32(2));
    w.set("mu", GgufValue::u32(3));
    w.set("alpha", GgufValue::str("replaced"));  // keeps its place
    const GgufFile f = GgufFile::fromBytes(w.toBytes());
    QCOMPARE(f.keyOrder(), (std::vector<std::string>{"zeta", "alpha", "mu"}));
    QCOMPARE(f.getString("alpha"), std::optional<std::string>("replaced"));
    QCOMPARE(f.alignment(), 32u);
    QVERIFY(f.find("general.alignment") == nullptr);
    QCOMPARE(f.path(), std::string("<memory>"));
}

void TstGguf::tensorRoundTrip_data() {
    QTest::addColumn<int>("version");
    QTest::addColumn<int>("alignment");  // 0: leave the default (32, no key written)
    QTest::addColumn<bool>("viaFile");

    QTest::newRow("v3 default alignment, bytes") << 3 << 0 << false;
    QTest::newRow("v2 default alignment, bytes") << 2 << 0 << false;
    QTest::newRow("v3 alignment 64, bytes") << 3 << 64 << false;
    QTest::newRow("v2 alignment 64, bytes") << 2 << 64 << false;
    QTest::newRow("v3 alignment 1, bytes") << 3 << 1 << false;
    QTest::newRow("v3 default alignment, file") << 3 << 0 << true;
    QTest::newRow("v2 alignment 64, file") << 2 << 64 << true;
    QTest::newRow("v3 alignment 256, file") << 3 << 256 << true;
}

void TstGguf::tensorRoundTrip() {
    QFETCH(int, version);
    QFETCH(int, alignment);
    QFETCH(bool, viaFile);

    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto randomValues = [&](size_t n) {
        std::vector<float> v(n);
        for (float& x : v) x = normal(rng);
        return v;
    };
    const std::vector<TensorCase> cases = {
        {"token_embd.weight", TensorType::F32, {3, 5}, randomValues(15)},
        {"blk.0.attn_k.weight", TensorType::F16, {7}, randomValues(7)},
        {"blk.0.attn_v.weight", TensorType::BF16, {2, 3, 1, 2}, randomValues(12)},
        {"blk.0.attn_q.weight", TensorType::Q8_0, {64, 3}, randomValues(192)},
        {"one", TensorType::F32, {1}, {42.0f}},
    };

    GgufWriter w(static_cast<uint32_t>(version));
    w.set("general.architecture", GgufValue::str("llama"));
    if (alignment != 0) w.setAlignment(static_cast<uint32_t>(alignment));
    for (const TensorCase& c : cases) {
        if (c.type == TensorType::F32) {
            w.addTensorF32(c.name, c.ne, c.values);
        } else {
            w.addTensor(c.name, c.type, c.ne, fromFloat(c.type, c.values));
        }
    }
    const Bytes image = w.toBytes();

    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string path = QDir(dir.path()).filePath("model.gguf").toStdString();
    std::optional<GgufFile> opened;
    if (viaFile) {
        w.write(path);
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList{"model.gguf"});  // no .tmp
        opened.emplace(GgufFile::open(path));
        QCOMPARE(opened->path(), path);
    } else {
        opened.emplace(GgufFile::fromBytes(image, "model.gguf"));
    }
    const GgufFile& f = *opened;

    const uint32_t align = alignment != 0 ? static_cast<uint32_t>(alignment) : 32u;
    QCOMPARE(f.version(), static_cast<uint32_t>(version));
    QCOMPARE(f.alignment(), align);
    QCOMPARE(f.fileSize(), static_cast<uint64_t>(image.size()));
    QCOMPARE(f.dataOffset() % align, uint64_t{0});
    if (alignment != 0) {
        QCOMPARE(f.getUint("general.alignment"), std::optional<uint64_t>(align));
        QCOMPARE(f.find("general.alignment")->type(), GgufType::UINT32);
    }
    QCOMPARE(f.tensors().size(), cases.size());

    uint64_t previousEnd = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        const TensorCase& c = cases[i];
        const GgufTensorInfo& t = f.tensors()[i];  // in the order added
        QCOMPARE(t.name, c.name);
        QCOMPARE(t.type, c.type);
        QCOMPARE(t.ne, c.ne);
        QCOMPARE(t.elements(), static_cast<uint64_t>(c.values.size()));
        QCOMPARE(t.bytes, *tensorBytes(c.type, c.values.size()));
        QCOMPARE(t.offset % align, uint64_t{0});
        QVERIFY(t.offset >= previousEnd);  // no overlap
        previousEnd = t.offset + t.bytes;
        QCOMPARE(f.findTensor(c.name), &t);

        const std::span<const uint8_t> data = f.tensorData(t);
        const Bytes expected = fromFloat(c.type, c.values);
        QCOMPARE(Bytes(data.begin(), data.end()), expected);
        QCOMPARE(static_cast<uint64_t>(data.data() - f.tensorData(f.tensors()[0]).data()),
                 t.offset - f.tensors()[0].offset);
        const std::vector<float> decoded = toFloat(t.type, data, t.elements(), t.name);
        QCOMPARE(decoded, toFloat(c.type, expected, c.values.size(), c.name));
        if (c.type == TensorType::F32) QCOMPARE(decoded, c.values);
    }
    QVERIFY(f.findTensor("missing") == nullptr);
    QVERIFY(previousEnd <= f.fileSize() - f.dataOffset());
}

void TstGguf::typedGetters() {
    GgufWriter w;
    w.set("u32", GgufValue::u32(7));
    w.set("i64", GgufValue::i64(5));
    w.set("neg", GgufValue::i32(-3));
    w.set("f32", GgufValue::f32(0.5f));
    w.set("str", GgufValue::str("hi"));
    w.set("strs", GgufValue::stringArray({"a", "b"}));
    w.set("ints", GgufValue::i32Array({1}));
    const GgufFile f = GgufFile::fromBytes(w.toBytes(), "getters.gguf");

    QCOMPARE(f.getUint("u32"), std::optional<uint64_t>(7));
    QCOMPARE(f.getUint("i64"), std::optional<uint64_t>(5));
    QCOMPARE(f.getUint("absent"), std::nullopt);
    QCOMPARE(f.requireUint("u32"), uint64_t{7});
    QCOMPARE(f.getFloat("f32"), std::optional<double>(0.5));
    QCOMPARE(f.getFloat("u32"), std::optional<double>(7.0));
    QCOMPARE(f.requireFloat("f32"), 0.5);
    QCOMPARE(f.getString("str"), std::optional<std::string>("hi"));
    QCOMPARE(f.requireString("str"), std::string("hi"));
    QCOMPARE(f.getStringArray("strs"), (std::optional<std::vector<std::string>>({"a", "b"})));
    QCOMPARE(f.getStringArray("absent"), std::nullopt);

    struct Case {
        const char* what;
        std::function<void()> call;
        std::vector<std::string> expect;
    };
    const std::vector<Case> cases = {
        {"getUint STRING", [&] { f.getUint("str"); }, {"'str'", "has type STRING", "expected"}},
        {"getUint negative", [&] { f.getUint("neg"); }, {"'neg'", "negative value -3"}},
        {"getFloat STRING", [&] { f.getFloat("str"); }, {"'str'", "has type STRING"}},
        {"getString UINT32",
         [&] { f.getString("u32"); },
         {"'u32'", "has type UINT32, expected STRING"}},
        {"getStringArray of INT32",
         [&] { f.getStringArray("ints"); },
         {"'ints'", "has type ARRAY of INT32, expected ARRAY of STRING"}},
        {"requireUint missing", [&] { f.requireUint("nope"); }, {"'nope'", "missing"}},
        {"requireFloat missing", [&] { f.requireFloat("nope"); }, {"'nope'", "missing"}},
        {"requireString missing", [&] { f.requireString("nope"); }, {"'nope'", "missing"}},
        {"requireString UINT32",
         [&] { f.requireString("u32"); },
         {"'u32'", "has type UINT32, expected STRING"}},
        {"requireUint FLOAT32", [&] { f.requireUint("f32"); }, {"'f32'", "has type FLOAT32"}},
    };
    for (const Case& c : cases) {
        const auto message = errorOf(c.call);
        QVERIFY2(message.has_value(), c.what);
        QVERIFY2(message->rfind("getters.gguf: ", 0) == 0, message->c_str());
        for (const std::string& part : c.expect)
            QVERIFY2(contains(*message, part), message->c_str());
    }
}

void TstGguf::valueConversions() {
    QCOMPARE(GgufValue::u8(200).asUint(), std::optional<uint64_t>(200));
    QCOMPARE(GgufValue::i8(-1).asUint(), std::nullopt);
    QCOMPARE(GgufValue::i8(-1).asInt(), std::optional<int64_t>(-1));
    QCOMPARE(GgufValue::boolean(true).asUint(), std::optional<uint64_t>(1));
    QCOMPARE(GgufValue::u64(kU64Max).asUint(), std::optional<uint64_t>(kU64Max));
    QCOMPARE(GgufValue::u64(kU64Max).asInt(), std::nullopt);
    QCOMPARE(GgufValue::f32(1.0f).asUint(), std::nullopt);
    QCOMPARE(GgufValue::f32(1.5f).asDouble(), std::optional<double>(1.5));
    QCOMPARE(GgufValue::i16(-4).asDouble(), std::optional<double>(-4.0));
    QCOMPARE(GgufValue::str("1").asDouble(), std::nullopt);
    QVERIFY(GgufValue::str("x").asString() != nullptr);
    QVERIFY(GgufValue::str("x").asArray() == nullptr);
    QCOMPARE(GgufValue::i32Array({4, 5}).asArray()->size(), size_t{2});
    QCOMPARE(GgufValue::i32Array({}).elemType(), GgufType::INT32);
    QCOMPARE(typeName(GgufType::FLOAT64), std::string_view("FLOAT64"));
}

void TstGguf::writerRejectsBadInput() {
    const std::vector<std::pair<const char*, std::function<void()>>> cases = {
        {"array element of the wrong type",
         [] { GgufValue::array(GgufType::INT32, {GgufValue::u8(1)}); }},
        {"alignment 48", [] { GgufWriter().setAlignment(48); }},
        {"alignment 0", [] { GgufWriter().setAlignment(0); }},
        {"general.alignment as STRING",
         [] { GgufWriter().set("general.alignment", GgufValue::str("32")); }},
        {"version 1", [] { GgufWriter(1).toBytes(); }},
        {"data size mismatch",
         [] { GgufWriter().addTensor("x", TensorType::F32, {4}, Bytes(15)); }},
        {"zero dimension", [] { GgufWriter().addTensor("x", TensorType::F32, {0}, {}); }},
        {"five dimensions",
         [] {
             GgufWriter().addTensor("x", TensorType::F32, {1, 1, 1, 1, 1}, Bytes(4));
         }},
        {"Q8_0 row of 33",
         [] {
             GgufWriter().addTensor("x", TensorType::Q8_0, {33, 32}, {});
         }},
        {"unknown type",
         [] { GgufWriter().addTensor("x", static_cast<TensorType>(99), {4}, Bytes(4)); }},
        {"duplicate tensor",
         [] {
             GgufWriter w;
             w.addTensorF32("x", {1}, {1.0f});
             w.addTensorF32("x", {1}, {1.0f});
         }},
    };
    for (const auto& [what, call] : cases) QVERIFY2(errorOf(call).has_value(), what);
}

void TstGguf::tensorBytesTable_data() {
    QTest::addColumn<int>("type");
    QTest::addColumn<quint64>("count");
    QTest::addColumn<qint64>("bytes");  // -1: nullopt
    QTest::addColumn<QString>("name");

    auto row = [](TensorType t, uint64_t count, int64_t bytes, const char* name) {
        QTest::addRow("%s x%llu", name, static_cast<unsigned long long>(count))
            << static_cast<int>(t) << quint64{count} << qint64{bytes} << QString(name);
    };
    row(TensorType::F32, 10, 40, "F32");
    row(TensorType::F16, 10, 20, "F16");
    row(TensorType::BF16, 10, 20, "BF16");
    row(TensorType::Q8_0, 64, 68, "Q8_0");
    row(TensorType::Q4_0, 32, 18, "Q4_0");
    row(TensorType::Q4_1, 32, 20, "Q4_1");
    row(TensorType::Q5_0, 32, 22, "Q5_0");
    row(TensorType::Q5_1, 32, 24, "Q5_1");
    row(TensorType::Q8_1, 32, 36, "Q8_1");
    row(TensorType::Q2_K, 256, 84, "Q2_K");
    row(TensorType::Q3_K, 256, 110, "Q3_K");
    row(TensorType::Q4_K, 256, 144, "Q4_K");
    row(TensorType::Q5_K, 256, 176, "Q5_K");
    row(TensorType::Q6_K, 256, 210, "Q6_K");
    row(TensorType::Q8_K, 512, 584, "Q8_K");
    row(TensorType::Q8_0, 33, -1, "Q8_0");               // not whole blocks
    row(TensorType::Q4_K, 128, -1, "Q4_K");              // not whole blocks
    row(TensorType::F32, uint64_t{1} << 62, -1, "F32");  // overflows
    row(static_cast<TensorType>(4), 32, -1, "type 4");   // removed Q4_2
    row(static_cast<TensorType>(99), 1, -1, "type 99");
}

void TstGguf::tensorBytesTable() {
    QFETCH(int, type);
    QFETCH(quint64, count);
    QFETCH(qint64, bytes);
    QFETCH(QString, name);
    const auto t = static_cast<TensorType>(type);
    const auto got = tensorBytes(t, count);
    if (bytes < 0) {
        QCOMPARE(got, std::nullopt);
    } else {
        QCOMPARE(got, std::optional<uint64_t>(static_cast<uint64_t>(bytes)));
    }
    QCOMPARE(QString::fromStdString(typeName(t)), name);
}

// ---------------------------------------------------------------------------------------------
// Conversions

void TstGguf::f16Decode_data() {
    QTest::addColumn<int>("bits");
    QTest::addColumn<float>("expected");

    QTest::newRow("0x0000 = +0") << 0x0000 << 0.0f;
    QTest::newRow("0x8000 = -0") << 0x8000 << -0.0f;
    QTest::newRow("0x3C00 = 1") << 0x3C00 << 1.0f;
    QTest::newRow("0xC000 = -2") << 0xC000 << -2.0f;
    QTest::newRow("0x7BFF = 65504") << 0x7BFF << 65504.0f;
    QTest::newRow("0x3555 = 0.333251953125") << 0x3555 << 0.333251953125f;
    QTest::newRow("0x0400 = 2^-14 smallest normal") << 0x0400 << std::ldexp(1.0f, -14);
    QTest::newRow("0x0001 = 2^-24 smallest subnormal") << 0x0001 << std::ldexp(1.0f, -24);
    QTest::newRow("0x03FF = 1023 * 2^-24 largest subnormal") << 0x03FF << std::ldexp(1023.0f, -24);
    QTest::newRow("0x8001 = -2^-24") << 0x8001 << -std::ldexp(1.0f, -24);
    QTest::newRow("0x7C00 = inf") << 0x7C00 << std::numeric_limits<float>::infinity();
    QTest::newRow("0xFC00 = -inf") << 0xFC00 << -std::numeric_limits<float>::infinity();
}

void TstGguf::f16Decode() {
    QFETCH(int, bits);
    QFETCH(float, expected);
    QCOMPARE(bitsOf(f16ToF32(static_cast<uint16_t>(bits))), bitsOf(expected));  // sign of 0 too
}

void TstGguf::f16Encode_data() {
    QTest::addColumn<float>("value");
    QTest::addColumn<int>("bits");

    const float inf = std::numeric_limits<float>::infinity();
    QTest::newRow("1 -> 0x3C00") << 1.0f << 0x3C00;
    QTest::newRow("-2 -> 0xC000") << -2.0f << 0xC000;
    QTest::newRow("65504 -> 0x7BFF") << 65504.0f << 0x7BFF;
    QTest::newRow("65519 rounds down to 65504") << 65519.0f << 0x7BFF;
    QTest::newRow("65520 ties to even: inf") << 65520.0f << 0x7C00;
    QTest::newRow("1e6 overflows to inf") << 1e6f << 0x7C00;
    QTest::newRow("-1e6 overflows to -inf") << -1e6f << 0xFC00;
    QTest::newRow("1 + 2^-11 ties to even 1") << 1.0f + std::ldexp(1.0f, -11) << 0x3C00;
    QTest::newRow("1 + 3*2^-11 ties to even 1 + 2^-9") << 1.0f + std::ldexp(3.0f, -11) << 0x3C02;
    QTest::newRow("1 + 2^-11 + 2^-20 rounds up")
        << 1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20) << 0x3C01;
    QTest::newRow("1 + 2^-11 - 2^-22 rounds down")
        << 1.0f + std::ldexp(1.0f, -11) - std::ldexp(1.0f, -22) << 0x3C00;
    QTest::newRow("2047.5 ... carries into the exponent") << 2047.5f << 0x6800;  // -> 2048
    QTest::newRow("1/3 -> 0x3555") << 1.0f / 3.0f << 0x3555;
    QTest::newRow("2^-14 smallest normal") << std::ldexp(1.0f, -14) << 0x0400;
    QTest::newRow("2^-24 smallest subnormal") << std::ldexp(1.0f, -24) << 0x0001;
    QTest::newRow("2^-25 ties to even 0") << std::ldexp(1.0f, -25) << 0x0000;
    QTest::newRow("1.5 * 2^-25 rounds up to 2^-24") << std::ldexp(1.5f, -25) << 0x0001;
    QTest::newRow("3 * 2^-25 ties to even 2 * 2^-24") << std::ldexp(3.0f, -25) << 0x0002;
    QTest::newRow("5 * 2^-25 ties to even 2 * 2^-24") << std::ldexp(5.0f, -25) << 0x0002;
    QTest::newRow("1023.5 * 2^-24 ties up to 2^-14") << std::ldexp(1023.5f, -24) << 0x0400;
    QTest::newRow("2^-30 underflows to 0") << std::ldexp(1.0f, -30) << 0x0000;
    QTest::newRow("-2^-30 underflows to -0") << -std::ldexp(1.0f, -30) << 0x8000;
    QTest::newRow("1e-40 (f32 subnormal) -> 0") << 1e-40f << 0x0000;
    QTest::newRow("-0 -> 0x8000") << -0.0f << 0x8000;
    QTest::newRow("inf -> 0x7C00") << inf << 0x7C00;
    QTest::newRow("-inf -> 0xFC00") << -inf << 0xFC00;
}

void TstGguf::f16Encode() {
    QFETCH(float, value);
    QFETCH(int, bits);
    QCOMPARE(static_cast<int>(f32ToF16(value)), bits);
}

void TstGguf::f16EveryPatternRoundTrips() {
    float previous = -1.0f;
    for (uint32_t h = 0; h <= 0xFFFF; ++h) {
        const auto h16 = static_cast<uint16_t>(h);
        const float f = f16ToF32(h16);
        const bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
        QCOMPARE(std::isnan(f), nan);
        if (!nan) QCOMPARE(static_cast<int>(f32ToF16(f)), static_cast<int>(h));
        if (h <= 0x7C00) {  // positive patterns decode in increasing order
            QVERIFY2(f > previous, qPrintable(QString::number(h, 16)));
            previous = f;
        }
    }
}

void TstGguf::bf16_data() {
    QTest::addColumn<float>("value");
    QTest::addColumn<int>("bits");
    QTest::addColumn<bool>("exact");  // value is representable: bf16ToF32(bits) == value

    QTest::newRow("0x3F80 = 1") << 1.0f << 0x3F80 << true;
    QTest::newRow("0xC000 = -2") << -2.0f << 0xC000 << true;
    QTest::newRow("0x8000 = -0") << -0.0f << 0x8000 << true;
    QTest::newRow("0x7F80 = inf") << std::numeric_limits<float>::infinity() << 0x7F80 << true;
    QTest::newRow("0x0001 = smallest subnormal") << std::ldexp(1.0f, -133) << 0x0001 << true;
    QTest::newRow("1 + 2^-8 ties to even 1") << 1.0f + std::ldexp(1.0f, -8) << 0x3F80 << false;
    QTest::newRow("1 + 3*2^-8 ties to even 1 + 2^-6")
        << 1.0f + std::ldexp(3.0f, -8) << 0x3F82 << false;
    QTest::newRow("1 + 2^-8 + 2^-20 rounds up")
        << 1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20) << 0x3F81 << false;
    QTest::newRow("FLT_MAX rounds to inf") << std::numeric_limits<float>::max() << 0x7F80 << false;
    QTest::newRow("pi -> 0x4049") << 3.14159265f << 0x4049 << false;
}

void TstGguf::bf16() {
    QFETCH(float, value);
    QFETCH(int, bits);
    QFETCH(bool, exact);
    QCOMPARE(static_cast<int>(f32ToBf16(value)), bits);
    if (exact) QCOMPARE(bitsOf(bf16ToF32(static_cast<uint16_t>(bits))), bitsOf(value));
}

void TstGguf::nanStaysNan() {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const uint16_t h = f32ToF16(nan);
    QCOMPARE(h & 0x7C00, 0x7C00);
    QVERIFY((h & 0x3FF) != 0);
    QVERIFY(std::isnan(f16ToF32(h)));
    // A NaN whose payload lies only in the low mantissa bits must not become inf.
    const float lowPayload = std::bit_cast<float>(uint32_t{0x7F800001});
    QVERIFY(std::isnan(f16ToF32(f32ToF16(lowPayload))));
    QVERIFY(std::isnan(bf16ToF32(f32ToBf16(lowPayload))));
    QVERIFY(std::isnan(bf16ToF32(f32ToBf16(nan))));
}

void TstGguf::q8_0KnownBlock() {
    // Block layout: f16 scale (little-endian) then 32 signed bytes; value = d * q.
    Bytes block(34);
    block[0] = 0x00;
    block[1] = 0x38;  // 0x3800 = 0.5
    const int8_t qs[4] = {-127, -2, 3, 127};
    for (int i = 0; i < 32; ++i) block[2 + i] = static_cast<uint8_t>(qs[i % 4]);
    const std::vector<float> v = toFloat(TensorType::Q8_0, block, 32, "known");
    QCOMPARE(v.size(), size_t{32});
    for (int i = 0; i < 32; ++i) QCOMPARE(v[i], 0.5f * static_cast<float>(qs[i % 4]));

    // Encoding a block whose largest magnitude is 127 gives d = 1 and q = x exactly.
    std::vector<float> x(32);
    for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i * 8 - 127);  // -127 ... 121
    const Bytes enc = fromFloat(TensorType::Q8_0, x);
    QCOMPARE(enc.size(), size_t{34});
    QCOMPARE(readAt<uint16_t>(enc, 0), uint16_t{0x3C00});
    for (int i = 0; i < 32; ++i)
        QCOMPARE(static_cast<int8_t>(enc[2 + i]), static_cast<int8_t>(x[i]));
}

void TstGguf::q8_0QuantizationError() {
    std::mt19937 rng(1234);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const size_t blocks = 70;
    std::vector<float> x(blocks * 32);
    for (size_t b = 0; b < blocks; ++b) {
        const float scale = std::pow(10.0f, static_cast<float>(b % 7) - 3.0f);
        for (size_t i = 0; i < 32; ++i) x[b * 32 + i] = normal(rng) * scale;
    }
    for (size_t i = 0; i < 32; ++i) x[5 * 32 + i] = 0.0f;                     // an all-zero block
    for (size_t i = 0; i < 32; ++i) x[6 * 32 + i] = i == 9 ? -127.0f : 0.0f;  // d = 1
    // max/127 = 1.4 * 2^-24 rounds down to the subnormal 2^-24: values would reach q = 178.
    for (size_t i = 0; i < 32; ++i) {
        x[7 * 32 + i] = std::ldexp(127.0f * 1.4f, -24) * static_cast<float>(i) / 31.0f;
    }

    const Bytes enc = fromFloat(TensorType::Q8_0, x);
    QCOMPARE(enc.size(), blocks * 34);
    const std::vector<float> y = toFloat(TensorType::Q8_0, enc, x.size(), "random");
    QCOMPARE(y.size(), x.size());
    for (size_t b = 0; b < blocks; ++b) {
        float amax = 0.0f;
        size_t argmax = 0;
        for (size_t i = 0; i < 32; ++i) {
            if (std::fabs(x[b * 32 + i]) > amax) {
                amax = std::fabs(x[b * 32 + i]);
                argmax = i;
            }
        }
        const float d = f16ToF32(readAt<uint16_t>(enc, b * 34));
        // d is max|x| / 127 to within one f16 step (2^-10 relative, 2^-24 for subnormals).
        const float step = std::max(amax / 127.0f * std::ldexp(1.0f, -10), std::ldexp(1.0f, -24));
        QVERIFY2(std::fabs(d - amax / 127.0f) <= step,
                 qPrintable(QStringLiteral("block %1: d %2, amax %3").arg(b).arg(d).arg(amax)));
        if (d >= std::ldexp(1.0f, -14)) {  // a normal f16 scale: the largest value maps to 127
            QCOMPARE(std::abs(static_cast<int>(static_cast<int8_t>(enc[b * 34 + 2 + argmax]))),
                     127);
        }
        for (size_t i = 0; i < 32; ++i) {
            const float err = std::fabs(x[b * 32 + i] - y[b * 32 + i]);
            QVERIFY2(err <= d / 2 * (1.0f + 1e-6f),
                     qPrintable(QStringLiteral("block %1 value %2: error %3 > d/2 = %4")
                                    .arg(b)
                                    .arg(i)
                                    .arg(double(err))
                                    .arg(double(d / 2))));
        }
    }
    for (size_t i = 0; i < 32; ++i) QCOMPARE(y[5 * 32 + i], 0.0f);
    QCOMPARE(y[6 * 32 + 9], -127.0f);
}

void TstGguf::q8_0RejectsPartialBlocks() {
    const std::vector<float> x(33, 1.0f);
    QVERIFY(errorOf([&] { fromFloat(TensorType::Q8_0, x); }).has_value());
    QVERIFY(errorOf([&] { fromFloat(TensorType::Q4_K, x); }).has_value());
    QVERIFY(errorOf([&] { toFloat(TensorType::Q8_0, Bytes(68), 33, "partial"); }).has_value());
}

void TstGguf::toFloatRefusesUnsupported_data() {
    QTest::addColumn<int>("type");
    QTest::addColumn<QString>("name");
    QTest::newRow("Q4_K") << static_cast<int>(TensorType::Q4_K) << "Q4_K";
    QTest::newRow("Q4_0") << static_cast<int>(TensorType::Q4_0) << "Q4_0";
    QTest::newRow("Q6_K") << static_cast<int>(TensorType::Q6_K) << "Q6_K";
    QTest::newRow("Q8_1") << static_cast<int>(TensorType::Q8_1) << "Q8_1";
    QTest::newRow("type 99") << 99 << "type 99";
}

void TstGguf::toFloatRefusesUnsupported() {
    QFETCH(int, type);
    QFETCH(QString, name);
    const Bytes data(4096);
    const auto message =
        errorOf([&] { toFloat(static_cast<TensorType>(type), data, 256, "blk.0.attn_q.weight"); });
    QVERIFY(message.has_value());
    QCOMPARE(QString::fromStdString(*message),
             QStringLiteral("tensor 'blk.0.attn_q.weight' has type %1; KVScope reads F32, F16, "
                            "BF16 and Q8_0")
                 .arg(name));
}

void TstGguf::toFloatRefusesShortData() {
    const auto message = errorOf([] { toFloat(TensorType::F32, Bytes(15), 4, "short.weight"); });
    QVERIFY(message.has_value());
    QVERIFY2(contains(*message, "'short.weight'"), message->c_str());
    QVERIFY(errorOf([] { toFloat(TensorType::Q8_0, Bytes(67), 64, "q"); }).has_value());
    QCOMPARE(toFloat(TensorType::F16, Bytes{0x00, 0x3C, 0xFF}, 1, "longer is fine"),
             std::vector<float>{1.0f});
}

// ---------------------------------------------------------------------------------------------
// Damaged files

void TstGguf::baseLayout() {
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

void TstGguf::damagedFile_data() {
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

void TstGguf::damagedFile() {
    QFETCH(QByteArray, image);
    QFETCH(QStringList, expected);
    const auto message = errorOf([&] { GgufFile::fromBytes(fromQ(image), "damaged.gguf"); });
    QVERIFY2(message.has_value(), "no Error thrown");
    QVERIFY2(message->rfind("damaged.gguf: ", 0) == 0, message->c_str());
    for (const QString& part : expected) {
        QVERIFY2(contains(*message, part.toStdString()), message->c_str());
    }
}

void TstGguf::truncatedEverywhere() {
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

void TstGguf::singleByteCorruptions() {
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

void TstGguf::nestingLimit_data() {
    QTest::addColumn<int>("depth");
    QTest::addColumn<bool>("ok");
    QTest::newRow("depth 1") << 1 << true;
    QTest::newRow("depth 8") << 8 << true;
    QTest::newRow("depth 9") << 9 << false;
    QTest::newRow("depth 100000") << 100000 << false;
}

void TstGguf::nestingLimit() {
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

// ---------------------------------------------------------------------------------------------
// Paths

void TstGguf::openNamesMissingPath() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string path = QDir(dir.path()).filePath("does-not-exist.gguf").toStdString();
    const auto message = errorOf([&] { GgufFile::open(path); });
    QVERIFY(message.has_value());
    QVERIFY2(message->rfind(path + ": ", 0) == 0, message->c_str());
    QVERIFY2(contains(*message, "cannot open"), message->c_str());
}

void TstGguf::openRefusesDirectoryAndEmptyFile() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string dirPath = dir.path().toStdString();
    const auto dirMessage = errorOf([&] { GgufFile::open(dirPath); });
    QVERIFY(dirMessage.has_value());
    QVERIFY2(contains(*dirMessage, dirPath), dirMessage->c_str());

    const QString empty = QDir(dir.path()).filePath("empty.gguf");
    QFile file(empty);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.close();
    const auto emptyMessage = errorOf([&] { GgufFile::open(empty.toStdString()); });
    QVERIFY(emptyMessage.has_value());
    QVERIFY2(contains(*emptyMessage, empty.toStdString() + ": empty"), emptyMessage->c_str());

    // A damaged file on disk (read through the map) gives the same checked error.
    const QString bad = QDir(dir.path()).filePath("bad.gguf");
    QFile badFile(bad);
    QVERIFY(badFile.open(QIODevice::WriteOnly));
    badFile.write(toQ(patched(baseImage(), off::countR, k2p60)));
    badFile.close();
    const auto badMessage = errorOf([&] { GgufFile::open(bad.toStdString()); });
    QVERIFY(badMessage.has_value());
    QVERIFY2(contains(*badMessage, bad.toStdString() + ": array count"), badMessage->c_str());
}

void TstGguf::writeToUnwritablePathLeavesNothing() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    GgufWriter w;
    w.set("a", GgufValue::u32(1));

    // A folder that does not exist.
    const std::string missing = QDir(dir.path()).filePath("no/such/dir/x.gguf").toStdString();
    auto message = errorOf([&] { w.write(missing); });
    QVERIFY(message.has_value());
    QVERIFY2(contains(*message, missing), message->c_str());

    // The target is a folder: the temporary file is written, the rename fails, and the temporary
    // file is removed again.
    QVERIFY(QDir(dir.path()).mkpath("taken/inside"));
    const std::string taken = QDir(dir.path()).filePath("taken").toStdString();
    message = errorOf([&] { w.write(taken); });
    QVERIFY(message.has_value());
    QVERIFY2(contains(*message, taken), message->c_str());
    QCOMPARE(QDir(dir.path()).entryList(QDir::AllEntries | QDir::NoDotAndDotDot),
             QStringList{"taken"});
}

void TstGguf::writeReplacesExistingFile() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string path = QDir(dir.path()).filePath("m.gguf").toStdString();
    GgufWriter first;
    first.set("which", GgufValue::str("first"));
    first.write(path);
    GgufWriter second;
    second.set("which", GgufValue::str("second"));
    second.addTensorF32("w", {2}, {1.0f, 2.0f});
    second.write(path);
    GgufFile f = GgufFile::open(path);
    QCOMPARE(f.getString("which"), std::optional<std::string>("second"));
    QCOMPARE(toFloat(TensorType::F32, f.tensorData(f.tensors()[0]), 2, "w"),
             (std::vector<float>{1.0f, 2.0f}));
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList{"m.gguf"});

    // Moving the file object keeps the mapping alive.
    GgufFile moved = std::move(f);
    QCOMPARE(moved.getString("which"), std::optional<std::string>("second"));
}

QTEST_GUILESS_MAIN(TstGguf)
#include "tst_gguf.moc"
