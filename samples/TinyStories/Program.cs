using System.Globalization;
using TinyStories;

// usage: TinyStories [--steps N] [--tokenizer tok512.bin]
int steps = 128;
string? tokenizerPath = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--steps" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out steps):
            i++;
            break;
        case "--tokenizer" when i + 1 < args.Length:
            tokenizerPath = args[++i];
            break;
        default:
            Console.Error.WriteLine("usage: TinyStories [--steps N (1-511)] [--tokenizer tok512.bin]");
            return 2;
    }
}
if (steps is < 1 or > 511)
{
    Console.Error.WriteLine("--steps must be 1 to 511 (the model's 512 positions, BOS included).");
    return 2;
}

// The class generated at build time from stories260K (TinyStories.csproj); one thread: a 64-wide model is too small
// to split.
using var model = new Stories260K();
var decoder = new GreedyDecoder(model);
var tokens = decoder.Generate(start: 1, steps);
Console.WriteLine(string.Join(' ', tokens));
if (tokenizerPath is not null)
{
    var tokenizer = Tokenizer.Read(File.ReadAllBytes(tokenizerPath), vocabularySize: 512);
    Console.WriteLine(tokenizer.Decode(tokens));
}
return 0;
