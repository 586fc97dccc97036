// Cell-centre longitude/latitude (PROJ) and great-circle distances on a sphere.
#include "birdflow/metrics.hpp"

#include "birdflow/petsc_compat.hpp"

#include <proj.h>

#include <cmath>
#include <memory>

namespace birdflow
{
namespace
{
constexpr double kDegree = M_PI / 180.0;

// Owns a PROJ context and the projected -> WGS84 operation, in lon/lat axis order.
struct ProjTransform
{
  PJ_CONTEXT *context = nullptr;
  PJ *operation = nullptr;

  ~ProjTransform()
  {
    if (operation) proj_destroy(operation);
    if (context) proj_context_destroy(context);
  }
};
} // namespace

PetscErrorCode ComputeCellLonLat(const Grid &grid, std::vector<double> *lon,
                                 std::vector<double> *lat)
{
  ProjTransform transform;
  const size_t n = grid.active_cells.size();

  PetscFunctionBeginUser;
  transform.context = proj_context_create();
  PetscCheck(transform.context, PETSC_COMM_SELF, PETSC_ERR_LIB, "PROJ failed to create a context");
  proj_log_level(transform.context, PJ_LOG_NONE);
  PJ *raw = proj_create_crs_to_crs(transform.context, grid.crs.c_str(), "EPSG:4326", nullptr);
  PetscCheck(raw, PETSC_COMM_SELF, PETSC_ERR_LIB,
             "PROJ cannot transform from the grid CRS to EPSG:4326 (%s); check geom/crs: %.80s",
             proj_context_errno_string(transform.context, proj_context_errno(transform.context)),
             grid.crs.c_str());
  // EPSG:4326 is latitude-first; normalising gives longitude, latitude like sf's coordinates.
  transform.operation = proj_normalize_for_visualization(transform.context, raw);
  proj_destroy(raw);
  PetscCheck(transform.operation, PETSC_COMM_SELF, PETSC_ERR_LIB,
             "PROJ failed to normalise the axis order of the grid CRS transformation");

  lon->resize(n);
  lat->resize(n);
  for (size_t i = 0; i < n; ++i) {
    PJ_COORD in = proj_coord(grid.CentreX((PetscInt)i), grid.CentreY((PetscInt)i), 0, 0);
    PJ_COORD out = proj_trans(transform.operation, PJ_FWD, in);
    PetscCheck(std::isfinite(out.xy.x) && std::isfinite(out.xy.y), PETSC_COMM_SELF, PETSC_ERR_LIB,
               "PROJ cannot inverse-project the centre (%g, %g) of active cell %zu", in.xy.x,
               in.xy.y, i + 1);
    (*lon)[i] = out.xy.x;
    (*lat)[i] = out.xy.y;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

double GreatCircleKm(double lon1, double lat1, double lon2, double lat2, double radius_km)
{
  // atan2(|a x b|, a . b) keeps full precision for near and antipodal points alike.
  const double ax = std::cos(lat1 * kDegree) * std::cos(lon1 * kDegree);
  const double ay = std::cos(lat1 * kDegree) * std::sin(lon1 * kDegree);
  const double az = std::sin(lat1 * kDegree);
  const double bx = std::cos(lat2 * kDegree) * std::cos(lon2 * kDegree);
  const double by = std::cos(lat2 * kDegree) * std::sin(lon2 * kDegree);
  const double bz = std::sin(lat2 * kDegree);
  const double cx = ay * bz - az * by, cy = az * bx - ax * bz, cz = ax * by - ay * bx;
  const double cross = std::sqrt(cx * cx + cy * cy + cz * cz);
  return radius_km * std::atan2(cross, ax * bx + ay * by + az * bz);
}

double HaversineKm(double lat1, double lon1, double lat2, double lon2)
{
  const double dlat = (lat2 - lat1) * kDegree, dlon = (lon2 - lon1) * kDegree;
  const double a =
      std::sin(dlat / 2) * std::sin(dlat / 2) +
      std::cos(lat1 * kDegree) * std::cos(lat2 * kDegree) * std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kHaversineEarthRadiusKm * std::atan2(std::sqrt(a), std::sqrt(1 - a));
}

PetscErrorCode ComputeCellDistances(const Grid &grid, std::vector<double> *distance_km)
{
  std::vector<double> lon, lat;

  PetscFunctionBeginUser;
  PetscCall(ComputeCellLonLat(grid, &lon, &lat));
  const size_t n = lon.size();
  distance_km->assign(n * n, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      double d = GreatCircleKm(lon[i], lat[i], lon[j], lat[j], kS2EarthRadiusKm);
      (*distance_km)[i * n + j] = d;
      (*distance_km)[j * n + i] = d;
    }
  PetscFunctionReturn(PETSC_SUCCESS);
}
} // namespace birdflow
