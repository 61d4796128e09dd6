namespace Sqair.Evaluation;

/// <summary>Minimum-cost assignment (Kuhn–Munkres, O(n³)) for rectangular cost matrices.</summary>
internal static class Hungarian
{
    /// <summary>
    /// Returns for each row the column assigned to it, or −1. Entries that are +∞ are forbidden;
    /// a row whose only options are forbidden stays unassigned.
    /// </summary>
    public static int[] Solve(double[,] cost)
    {
        int rows = cost.GetLength(0), cols = cost.GetLength(1), n = Math.Max(rows, cols);
        if (n == 0) return new int[rows];
        double big = 1;
        foreach (var c in cost) if (double.IsFinite(c)) big = Math.Max(big, Math.Abs(c));
        big = big * (n + 1) * 10;
        // Square matrix, forbidden entries and padding at a cost no real assignment reaches.
        var a = new double[n + 1, n + 1];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                a[i + 1, j + 1] = i < rows && j < cols && double.IsFinite(cost[i, j]) ? cost[i, j] : big;

        var u = new double[n + 1]; var v = new double[n + 1];
        var p = new int[n + 1]; var way = new int[n + 1];
        for (int i = 1; i <= n; i++)
        {
            p[0] = i;
            int j0 = 0;
            var minv = Enumerable.Repeat(double.PositiveInfinity, n + 1).ToArray();
            var used = new bool[n + 1];
            do
            {
                used[j0] = true;
                int i0 = p[j0], j1 = 0;
                double delta = double.PositiveInfinity;
                for (int j = 1; j <= n; j++)
                {
                    if (used[j]) continue;
                    double cur = a[i0, j] - u[i0] - v[j];
                    if (cur < minv[j]) { minv[j] = cur; way[j] = j0; }
                    if (minv[j] < delta) { delta = minv[j]; j1 = j; }
                }
                for (int j = 0; j <= n; j++)
                {
                    if (used[j]) { u[p[j]] += delta; v[j] -= delta; }
                    else minv[j] -= delta;
                }
                j0 = j1;
            } while (p[j0] != 0);
            do
            {
                int j1 = way[j0];
                p[j0] = p[j1];
                j0 = j1;
            } while (j0 != 0);
        }
        var result = Enumerable.Repeat(-1, rows).ToArray();
        for (int j = 1; j <= n; j++)
        {
            int i = p[j] - 1, col = j - 1;
            if (i < rows && col < cols && double.IsFinite(cost[i, col])) result[i] = col;
        }
        return result;
    }
}
