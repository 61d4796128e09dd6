using System.Text.Json;
using Sqair.Data;
using Sqair.Model;
using Sqair.Objective;
using static TorchSharp.torch;

namespace Sqair.Tests.Model;

/// <summary>
/// Speed work must not change the model: for a fixed seed and batch, the loss and every
/// parameter's gradient must match values recorded from the implementation as it stood at commit
/// d9e40bb (grid_sample transformer, one op per object). Each gradient is summarised by its norm
/// and its inner product with a fixed pattern, so a change in any part of it shows.
/// To re-record after a deliberate change of the model:
/// SQAIR_RECORD_REFERENCE=1 dotnet test --filter ReferenceGradientTests
/// </summary>
public class ReferenceGradientTests
{
    const string File = "Model/reference-gradients.json";
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    sealed record Reference(double Loss, Dictionary<string, double[]> Gradients);

    static Reference Compute(string model)
    {
        var c = new SqairConfig { Model = Enum.Parse<ModelKind>(model, ignoreCase: true), BatchSize = 4, SeqLen = 3 };
        var source = new GeneratedSource(new MovingMnist(c.DataConfig(), TestUtil.Templates(200, 3), 3));
        using var batch = new BatchLoader(source, c.BatchSize, shuffle: false, seed: 0).Get(0, c.SeqLen);
        manual_seed(11);
        var m = new SqairModel(c);
        var output = m.Forward(batch.Frames, c.KParticles);
        var (loss, _) = Vimco.Surrogate(output.LogWeights, output.LogQDiscrete, c.SeqLen);
        loss.backward();
        var gradients = new Dictionary<string, double[]>();
        foreach (var (name, p) in m.named_parameters())
        {
            if (p.grad is null) continue;
            var g = p.grad.to(ScalarType.Float64).flatten();
            var pattern = arange(g.numel(), dtype: ScalarType.Float64).mul(0.7).add(1.0).sin();
            // divided by √n so that its size, like the norm's, does not grow with the parameter's size
            gradients[name] = [g.norm().item<double>(), g.dot(pattern).item<double>() / Math.Sqrt(g.numel())];
        }
        return new Reference(loss.item<float>(), gradients);
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("conv")]
    public void Loss_and_gradients_match_the_recorded_reference(string model)
    {
        var path = Path.Combine(AppContext.BaseDirectory, File);
        var actual = Compute(model);
        if (Environment.GetEnvironmentVariable("SQAIR_RECORD_REFERENCE") == "1")
        {
            var source = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../", File));
            var all = System.IO.File.Exists(source)
                ? JsonSerializer.Deserialize<Dictionary<string, Reference>>(System.IO.File.ReadAllText(source))!
                : [];
            all[model] = actual;
            System.IO.File.WriteAllText(source, JsonSerializer.Serialize(all, Indented));
            return;
        }
        var expected = JsonSerializer.Deserialize<Dictionary<string, Reference>>(
            System.IO.File.ReadAllText(path))![model];
        Assert.Equal(expected.Loss, actual.Loss, Math.Abs(expected.Loss) * 1e-5);
        Assert.Equal(expected.Gradients.Keys.Order(), actual.Gradients.Keys.Order());
        foreach (var (name, e) in expected.Gradients)
        {
            var a = actual.Gradients[name];
            double norm = e[0];
            // float32 arithmetic in another order: differences of order 1e-6 relative, grown through the recurrences
            double tolerance = 2e-4 * norm + 1e-7;
            Assert.True(Math.Abs(a[0] - e[0]) <= tolerance && Math.Abs(a[1] - e[1]) <= tolerance,
                $"{name}: gradient norm {a[0]:G9} (recorded {e[0]:G9}), projection {a[1]:G9} (recorded {e[1]:G9})");
        }
    }
}
