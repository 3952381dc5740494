// DriftChart: the cache lab's other side of the trade. Under a lossy cache policy every token's
// next-token distribution is compared with the full cache's on the same tokens (StepTrace::driftKl,
// driftTop1, driftFullChoiceProb, measured by DecodeSession); this draws the KL divergence per
// token and the policy's probability of the full cache's first choice, and says in its caption how
// often both put the same token first.
#pragma once

#include <QChartView>
#include <QString>

class QLineSeries;
class QScatterSeries;
class QValueAxis;

namespace kvscope::viz {

class TraceStore;

class DriftChart : public QChartView {
    Q_OBJECT
  public:
    explicit DriftChart(TraceStore* store, QWidget* parent = nullptr);

    // x = token position; y = KL(full ‖ policy) in nats (left axis).
    const QLineSeries* klSeries() const { return kl_; }
    // x = token position; y = the policy's probability of the full cache's first token (right).
    const QLineSeries* fullChoiceSeries() const { return fullChoice_; }
    // The tokens whose first choice differs from the full cache's (on the KL line).
    const QScatterSeries* disagreeSeries() const { return disagree_; }
    int measured() const { return measured_; }  // tokens with a drift figure
    int agreed() const { return agreed_; }      // of those, same first token
    QString caption() const { return caption_; }

  signals:
    void captionChanged(const QString& caption);

  private:
    void rebuild();
    void applyTheme();

    TraceStore* store_;
    QLineSeries *kl_, *fullChoice_;
    QScatterSeries* disagree_;
    QValueAxis *x_, *y_, *p_;
    int measured_ = 0, agreed_ = 0;
    QString caption_;
};

}  // namespace kvscope::viz
