// Lab 05's reference solutions. Try the exercises in lab.cpp before you read this.
#include <algorithm>
#include <cmath>
#include <vector>

#include "driver/theory.h"

#include "../lab_util.h"

LAB_SOLUTION_FILE;

namespace solution {

using namespace ittt;
using theory::Matrix;

double measure_eps(const Matrix& E) {
    double eps = 0;
    for (int a = 0; a < E.rows; ++a)
        for (int b = a + 1; b < E.rows; ++b) eps = std::max(eps, std::fabs(theory::dot(E.row(a), E.row(b), E.cols)));
    return eps;
}
double measure_c_norm_sq(const Matrix& E) {
    double c = INFINITY;
    for (int a = 0; a < E.rows; ++a) c = std::min(c, theory::dot(E.row(a), E.row(a), E.cols));
    return c;
}

// Theorem 1's setting, one trial: the query at q reads W = Wd + eta sum_{chunks j < chunk(q)} dW_j,
// dW_j = sum_{t in chunk j} V_t Z_t^T, through the tied embedding: dl_q[w] = e_w^T (eta sum dW_j) z_q
// = eta sum_{t < chunk(q) C} (e_w . V_t)(Z_t . z_q). The LM-aligned V_t is e_{x_{t+1}}, except at
// the last position of a chunk, where the conv's +1 tap reads padding (V_t = 0).
std::vector<double> logit_change(const theory::TheoryModel& m, const theory::ProbeSequence& seq, int chunk, double eta) {
    const int vocab = m.embed.rows, d = m.embed.cols, f = m.token_features.cols;
    const int end = seq.query_pos / chunk * chunk;  // the first position of the query's chunk
    const double* zq = m.token_features.row(seq.tokens[static_cast<size_t>(seq.query_pos)]);
    std::vector<double> dl(static_cast<size_t>(vocab), 0.0);
    for (int t = 0; t < end; ++t) {
        if ((t + 1) % chunk == 0) continue;  // V_t = 0 at a chunk's last position
        const double* v = m.embed.row(seq.tokens[static_cast<size_t>(t + 1)]);
        const double align = eta * theory::dot(m.token_features.row(seq.tokens[static_cast<size_t>(t)]), zq, f);
        for (int w = 0; w < vocab; ++w) dl[static_cast<size_t>(w)] += theory::dot(m.embed.row(w), v, d) * align;
    }
    return dl;
}

}  // namespace solution
