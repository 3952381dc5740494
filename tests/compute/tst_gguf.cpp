// Tests of the GGUF reader and writer (the conversions: tst_tensor_types).
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

    // erase: the others keep their order; general.alignment goes back to 32
    w.setAlignment(64);
    QCOMPARE(w.keys(), (std::vector<std::string>{"zeta", "alpha", "mu", "general.alignment"}));
    QVERIFY(w.erase("alpha"));
    QVERIFY(!w.erase("alpha"));
    QVERIFY(w.erase("general.alignment"));
    const GgufFile g = GgufFile::fromBytes(w.toBytes());
    QCOMPARE(g.keyOrder(), (std::vector<std::string>{"zeta", "mu"}));
    QCOMPARE(g.alignment(), 32u);
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
