// Transition: an eased QVariantAnimation from 0 to 1.
#include "common/transition.h"

#include <QEasingCurve>
#include <QVariantAnimation>

#include "common/theme.h"

namespace kvscope::viz {

Transition::Transition(QObject* parent) : QObject(parent), animation_(new QVariantAnimation(this)) {
    animation_->setStartValue(0.0);
    animation_->setEndValue(1.0);
    animation_->setEasingCurve(QEasingCurve::OutCubic);
    connect(animation_, &QVariantAnimation::valueChanged, this, [this](const QVariant& v) {
        progress_ = v.toDouble();
        emit progressed();
    });
}

void Transition::start() {
    animation_->stop();
    const int ms = animationMs();
    if (ms <= 0) {
        finish();
        return;
    }
    progress_ = 0;
    animation_->setDuration(ms);
    animation_->start();
}

void Transition::finish() {
    animation_->stop();
    progress_ = 1;
    emit progressed();
}

bool Transition::running() const {
    return animation_->state() == QVariantAnimation::Running;
}

}  // namespace kvscope::viz
