// kvscope: the entry point. For now the command line alone; the window arrives with its issue.
#include <QCoreApplication>

#include "cli.h"

int main(int argc, char** argv) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName("kvscope");
    QCoreApplication::setApplicationVersion(KVSCOPE_VERSION);
    std::vector<std::string> args(argv + 1, argv + argc);
    return kvscope::app::runCli(args);
}
