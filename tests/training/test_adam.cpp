#include "birdflow/training.hpp"
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace birdflow;
using birdflow::testing::AllRanks;

TEST(Adam, TwoStepsMatchHandComputation)
{
  Vec theta, grad;
  VecCreateMPI(PETSC_COMM_WORLD, PETSC_DECIDE, 7, &theta);
  VecDuplicate(theta, &grad);
  VecSet(theta, 1.0);
  AdamOptions options; // lr 0.1, betas 0.9 / 0.999, eps 1e-8
  Adam adam;
  ASSERT_TRUE(AllRanks(AdamCreate(theta, options, &adam) == 0));

  // Step 1 with g = 2: m = 0.2, v = 0.004, m_hat = 2, v_hat = 4, x = 1 - 0.1 * 2 / (2 + 1e-8).
  VecSet(grad, 2.0);
  AdamUpdate(&adam, grad, theta);
  double x1 = 1.0 - 0.1 * 2.0 / (2.0 + 1e-8);
  // Step 2 with g = -1: m = 0.18 - 0.1, v = 0.003996 + 0.001.
  VecSet(grad, -1.0);
  AdamUpdate(&adam, grad, theta);
  double m = 0.9 * 0.2 + 0.1 * -1.0, v = 0.999 * 0.004 + 0.001 * 1.0;
  double m_hat = m / (1 - 0.81), v_hat = v / (1 - 0.999 * 0.999);
  double x2 = x1 - 0.1 * m_hat / (std::sqrt(v_hat) + 1e-8);

  PetscReal max_value, min_value;
  VecMax(theta, nullptr, &max_value);
  VecMin(theta, nullptr, &min_value);
  EXPECT_NEAR(max_value, x2, 1e-15);
  EXPECT_NEAR(min_value, x2, 1e-15);
  AdamDestroy(&adam);
  VecDestroy(&grad);
  VecDestroy(&theta);
}

TEST(Adam, RejectsBetaOfOne)
{
  AdamOptions options;
  PetscOptionsSetValue(nullptr, "-adam_beta1", "1");
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  PetscErrorCode code = AdamOptionsSetFromOptions(PETSC_COMM_WORLD, &options);
  PetscPopErrorHandler();
  PetscOptionsClearValue(nullptr, "-adam_beta1");
  EXPECT_TRUE(AllRanks(code == PETSC_ERR_USER_INPUT));
}
