// adamw_cpu.cpp: the reference AdamW step, in the precision of the parameters
// (as the CUDA kernel will do it in F32).
#include <cmath>

#include "kernels/adamw/adamw.h"

namespace ittt::kernels {

template <class T>
void adamw_step_cpu(T* param, const T* grad, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T weight_decay,
                    T bias_correction1, T bias_correction2) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) {
        const T g = grad[i];
        const T mi = beta1 * m[i] + (T(1) - beta1) * g;
        const T vi = beta2 * v[i] + (T(1) - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const T m_hat = mi / bias_correction1;
        const T v_hat = vi / bias_correction2;
        param[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * param[i]);
    }
}

template void adamw_step_cpu<float>(float*, const float*, float*, float*, int64_t, float, float, float, float, float, float,
                                    float);
template void adamw_step_cpu<double>(double*, const double*, double*, double*, int64_t, double, double, double, double, double,
                                     double, double);

}  // namespace ittt::kernels
