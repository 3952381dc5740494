// Small numeric constants shared by the kernels, the trainer and the schedules.
#pragma once

namespace kvscope {

inline constexpr double kPi = 3.14159265358979323846;

}  // namespace kvscope
