// BlockTableView: the KV cache as paged blocks, as vLLM's block tables teach it. One row per
// sequence (the session, and its fork once there is one): a box per block of its table, named by
// the block's id, with how many of its slots hold tokens; a block two sequences hold (prefix
// sharing) is drawn in the accent colour with its reference count, stored once. The numbers come
// from the cache itself (KvCache::blockId, blockRefs), sent by the decoding controller.
#pragma once

#include <QRect>
#include <QString>
#include <QWidget>
#include <cstdint>
#include <vector>

namespace kvscope::viz {

struct BlockTable {
    QString name;               // "session", "fork"
    std::vector<uint64_t> ids;  // the table: block ids in order
    std::vector<long> refs;     // how many caches hold each block
    int rows = 0;               // token rows the sequence holds
    QString continuation;       // for a fork: the text each side went on with
};

class BlockTableView : public QWidget {
    Q_OBJECT
  public:
    explicit BlockTableView(QWidget* parent = nullptr);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    void setTables(std::vector<BlockTable> tables, int blockTokens, uint64_t blockBytes);
    const std::vector<BlockTable>& tables() const { return tables_; }
    // Blocks stored (each id once) and what separate caches would hold (every table's blocks).
    int storedBlocks() const;
    int separateBlocks() const;
    QRect blockRect(int table, int block) const;  // where block `block` of table `table` is drawn
    QString caption() const;

  protected:
    void paintEvent(QPaintEvent* event) override;

  private:
    int labelWidth() const;
    std::vector<BlockTable> tables_;
    int blockTokens_ = 0;
    uint64_t blockBytes_ = 0;
};

}  // namespace kvscope::viz
