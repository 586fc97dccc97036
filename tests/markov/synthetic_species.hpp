// A small synthetic species for tests that need no file: a 4 x 4 raster, 12 active cells and 6
// time points whose dynamic masks differ from week to week.
#pragma once

#include "birdflow/species.hpp"

#include <cmath>
#include <vector>

namespace birdflow::testing
{
inline SpeciesData SyntheticSpecies()
{
  SpeciesData species;
  species.path = "synthetic";
  species.n_active = 12;
  species.n_timesteps = 6;
  species.grid.nrow = 4;
  species.grid.ncol = 4;
  species.grid.xres = species.grid.yres = 100e3;
  for (PetscInt cell = 0; cell < 12; ++cell)
    species.grid.active_cells.push_back(cell);
  const PetscInt N = species.n_active, T = species.n_timesteps;
  species.distr.assign(N * T, 0.0);
  species.dynamic_mask.assign(N * T, 0);
  species.week_cells.resize(T);
  for (PetscInt t = 0; t < T; ++t) {
    double total = 0;
    for (PetscInt i = 0; i < N; ++i) {
      // Week t leaves out the cells with (i + t) % 5 == 0, so n_t varies between 9 and 10.
      if ((i + t) % 5 == 0) continue;
      double value = 1.0 + std::sin(0.7 * i + 1.3 * t) + 0.1 * i;
      species.distr[i * T + t] = value;
      total += value;
    }
    for (PetscInt i = 0; i < N; ++i) {
      species.distr[i * T + t] /= total;
      if (species.distr[i * T + t] > 0) {
        species.dynamic_mask[i * T + t] = 1;
        species.week_cells[t].push_back(i);
      }
    }
  }
  return species;
}

/* Great-circle-like distances (km) between the synthetic cells: Euclidean distance of the raster
   positions times 100 km, packed as the strict upper triangle. */
inline std::vector<double> SyntheticDistances(const SpeciesData &species)
{
  std::vector<double> packed;
  for (PetscInt i = 0; i < species.n_active; ++i)
    for (PetscInt j = i + 1; j < species.n_active; ++j) {
      double dr = (double)(species.grid.Row(i) - species.grid.Row(j));
      double dc = (double)(species.grid.Col(i) - species.grid.Col(j));
      packed.push_back(100.0 * std::sqrt(dr * dr + dc * dc));
    }
  return packed;
}
} // namespace birdflow::testing
