// kvscope devices: every OpenCL platform and device, with type, compute units, memory, whether
// KVScope can use it (and why not), and the matrix-product paths measured for it if cached.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <cstdio>

#include "cli/cli.h"
#include "opencl/device_list.h"
#include "opencl/device_weights.h"
#include "opencl/matmul_choice.h"

namespace kvscope::app {
namespace {

double gib(uint64_t bytes) {
    return static_cast<double>(bytes) / (1ull << 30);
}

}  // namespace

int runDevices(const CliArgs& args) {
    const ocl::DeviceList list = ocl::listDevices();
    const std::string cacheDir = ocl::defaultCacheDir();
    auto choiceOf = [&](const ocl::DeviceInfo& d) {
        return ocl::loadMatMulChoice(cacheDir, d.key());
    };

    if (args.has("json")) {
        QJsonArray devices;
        for (const ocl::DeviceInfo& d : list.devices) {
            const auto choice = choiceOf(d);
            devices.append(QJsonObject{
                {"index", d.index},
                {"platform", QString::fromStdString(d.platformName)},
                {"platform_index", d.platformIndex},
                {"platform_version", QString::fromStdString(d.platformVersion)},
                {"name", QString::fromStdString(d.name)},
                {"vendor", QString::fromStdString(d.vendor)},
                {"type", QString::fromStdString(d.type)},
                {"compute_units", d.computeUnits},
                {"global_memory_bytes", static_cast<double>(d.globalMemBytes)},
                {"max_alloc_bytes", static_cast<double>(d.maxAllocBytes)},
                {"driver_version", QString::fromStdString(d.driverVersion)},
                {"opencl_version", QString::fromStdString(d.version)},
                {"usable", d.usable},
                {"why_not", QString::fromStdString(d.whyNot)},
                {"gemv",
                 choice ? QJsonValue(QString::fromStdString(choice->gemvText())) : QJsonValue()},
                {"gemm",
                 choice ? QJsonValue(QString::fromStdString(choice->gemmText())) : QJsonValue()},
            });
        }
        const QJsonObject o{{"devices", devices},
                            {"problem", QString::fromStdString(list.problem)},
                            {"weight_types", QString::fromStdString(ocl::deviceWeightRules())}};
        const QByteArray bytes = QJsonDocument(o).toJson(QJsonDocument::Indented);
        std::fwrite(bytes.constData(), 1, static_cast<size_t>(bytes.size()), stdout);
        return 0;
    }

    if (list.devices.empty()) {
        std::printf("no OpenCL devices: %s\n--backend auto uses the CPU backend.\n",
                    list.problem.c_str());
        return 0;
    }
    std::printf("OpenCL devices (--device N picks one for --backend opencl):\n");
    int lastPlatform = -1;
    for (const ocl::DeviceInfo& d : list.devices) {
        if (d.platformIndex != lastPlatform) {
            std::printf("\nplatform %d: %s (%s)\n", d.platformIndex, d.platformName.c_str(),
                        d.platformVersion.c_str());
            lastPlatform = d.platformIndex;
        }
        const auto choice = choiceOf(d);
        std::printf("  %d  %s\n", d.index, d.name.c_str());
        std::printf("     %s, %d compute units, %.2f GiB global memory (%.2f GiB per buffer)\n",
                    d.type.c_str(), d.computeUnits, gib(d.globalMemBytes), gib(d.maxAllocBytes));
        std::printf("     driver %s, %s\n", d.driverVersion.c_str(), d.version.c_str());
        if (d.usable)
            std::printf("     usable; %s\n",
                        choice ? choice->text().c_str()
                               : "gemv and gemm paths not measured yet (at its first use)");
        else
            std::printf("     not usable: %s\n", d.whyNot.c_str());
    }
    std::printf("\nweight types on the device: %s\n", ocl::deviceWeightRules().c_str());
    if (!list.problem.empty()) std::printf("\nnote: %s\n", list.problem.c_str());
    if (!cacheDir.empty())
        std::printf("\nmeasured gemv/gemm paths are cached in %s/matmul.txt\n", cacheDir.c_str());
    return 0;
}

}  // namespace kvscope::app
